"""Operator tools over the retained topics: positions and lag, replay, read-model rebuild, group rewind.

Written for any Kafka-protocol broker: end offsets come from fetch responses (high watermarks) and time
ranges from message timestamps, because some brokers (Tansu, our dev broker) answer ListOffsets and
offsets-for-times requests wrongly and break on admin offset listing.
"""
