#!/usr/bin/env bash
# CI for a repository of charts (workflow "Helm Official" in docs/workflows.md):
# lint every chart under charts/, then package, sign and release them all to
# DEST in one command. Charts already released at their version are kept
# (a chart's version must change to publish it again).
#
#   DEST=s3://charts-bucket/stable SIGNING_KEY="Charts Team" KEYRING=secring.gpg \
#     examples/ci/release-charts.sh
set -euo pipefail
: "${DEST:?set DEST to the repository, e.g. s3://charts-bucket/stable}"
CHARTER=${CHARTER:-charter}
CHARTS=${CHARTS:-charts}

for chart in "$CHARTS"/*/; do
	"$CHARTER" lint "$chart"
done
sign=()
if [ -n "${SIGNING_KEY:-}" ]; then
	sign=(--sign --key "$SIGNING_KEY")
	[ -n "${KEYRING:-}" ] && sign+=(--keyring "$KEYRING")
fi
"$CHARTER" release -u "$DEST" "${sign[@]}" "$CHARTS"
