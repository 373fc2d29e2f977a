"""Apache Kafka's jars from Maven Central, cached per version, and the `java` that runs them."""

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from services.ops.devstack.errors import JavaMissing, KafkaToolFailed, MavenMissing

log = logging.getLogger("sluice.devstack")

KAFKA_VERSION = "4.4.0"
POM = Path(__file__).with_name("pom.xml")
FETCH_TIMEOUT_S = 600.0
MINIMUM_JAVA = 17
TOOL_JVM_OPTIONS = ("-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
"""For one-shot tools (storage format, ACL changes): a small heap and the quick compiler start them fastest."""

_JAVA_VERSION = re.compile(r'version "(?:1\.)?(\d+)')


def default_cache_dir() -> Path:
    """Where fetched Kafka jars live: $XDG_CACHE_HOME/sluice/kafka, or ~/.cache/sluice/kafka."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sluice" / "kafka"


def kafka_classpath(version: str = KAFKA_VERSION, cache_dir: Path | None = None) -> str:
    """The JVM classpath of Kafka `version`; fetches its jars into cache_dir/version/libs on first use."""
    libs = (cache_dir or default_cache_dir()) / version / "libs"
    if not libs.is_dir():
        fetch_jars(version, libs)
    return str(libs / "*")


def class_archive(classpath: str) -> Path:
    """Where the JVM's class-data archive for this classpath lives: beside its libs folder."""
    return Path(classpath).parent.parent / "classes.jsa"


def class_archive_options(classpath: str) -> list[str]:
    """JVM options that map the class archive, if one has been made (else none: the JVM starts without it)."""
    archive = class_archive(classpath)
    # -Xshare:auto is the default: an archive that no longer matches this JVM is ignored, with a warning.
    return [f"-XX:SharedArchiveFile={archive}"] if archive.is_file() else []


def fetch_jars(version: str, libs: Path) -> None:
    """Copy Kafka `version` and its runtime dependencies into libs, via a scratch folder renamed at the end."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenMissing()
    libs.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # Fill a scratch folder, then rename it: a fetch cut short never passes for a complete cache.
    with tempfile.TemporaryDirectory(prefix="libs-", dir=libs.parent) as scratch:
        _run_maven(mvn, version, Path(scratch) / "libs")
        try:
            os.rename(Path(scratch) / "libs", libs)
        except OSError:
            if not libs.is_dir():
                raise
            # another process finished the same fetch first; its copy is as good as ours
    log.info("fetched Kafka %s jars into %s in %.1fs", version, libs, time.monotonic() - started)


def _run_maven(mvn: str, version: str, output: Path) -> None:
    argv = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies"]
    argv += ["-DincludeScope=runtime", f"-DoutputDirectory={output}", f"-Dkafka.version={version}"]
    what = f"fetching Kafka {version} with Maven"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaToolFailed(what, f"not done within {FETCH_TIMEOUT_S:g}s") from exc
    if done.returncode != 0 or not (output / f"kafka_2.13-{version}.jar").is_file():
        tail = (done.stdout + done.stderr).splitlines()[-15:]
        raise KafkaToolFailed(what, f"mvn exited with code {done.returncode}", output_tail=tail)


def java_binary() -> str:
    """Path of a Java 17+ `java`; JavaMissing if there is none on PATH or it is older."""
    java = shutil.which("java")
    if java is None:
        raise JavaMissing()
    banner = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False).stderr
    match = _JAVA_VERSION.search(banner)
    if match is None or int(match.group(1)) < MINIMUM_JAVA:
        raise JavaMissing(found_version=match.group(1) if match else banner.strip()[:80])
    return java


def run_java_tool(what: str, java: str, classpath: str, argv: list[str], *, timeout: float = 120.0) -> str:
    """Run a Kafka main class to completion; its output, or KafkaToolFailed with the output's tail."""
    command = [java, *TOOL_JVM_OPTIONS, *class_archive_options(classpath), "-cp", classpath, *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise KafkaToolFailed(what, f"not done within {timeout:g}s") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise KafkaToolFailed(what, f"exited with code {done.returncode}", output_tail=output.splitlines()[-15:])
    return output
