#!/usr/bin/env bash
# GPU discovery for Spark's resource scheduling (spark.executor.resource.gpu.discoveryScript), written for Kiln.
# Prints {"name": "gpu", "addresses": ["0", "1", ...]} from nvidia-smi; an empty list when there is no GPU or driver.
set -euo pipefail
if command -v nvidia-smi >/dev/null 2>&1; then
  addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr -d ' ' | sed 's/.*/"&"/' | paste -sd, - || true)
else
  addresses=""
fi
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
