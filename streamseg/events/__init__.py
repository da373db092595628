"""From label maps to events: regions of interest, class coverage, rules, event clips and alerts.

regions.py   named polygons (normalized), checked; their masks per frame size
coverage.py  per region, the fraction of its pixels each class holds
rules.py     ``person in crosswalk > 0.02 for 0.5s``
tracker.py   a rule's event state machine on one source
clips.py     encoded-packet ring buffer (the pre-roll) and clip files
source.py    one source's plan (checked at start) and its events sink
bus.py       the run's fan-out: MQTT/Kafka, MCAP, webhook, Python callbacks and iterators
webhook.py   ``--webhook URL``
"""

from streamseg.events.bus import EventBus, Listener
from streamseg.events.regions import Region
from streamseg.events.rules import Rule

__all__ = ["EventBus", "Listener", "Region", "Rule"]
