"""Parses Prometheus text format on stdin with prometheus_client's parser and
prints the samples as JSON lines: {"name", "labels", "value", "type"}.
Exits non-zero when the text does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value, "type": family.type}))
