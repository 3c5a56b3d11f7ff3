#!/usr/bin/env bash
# Prints the version to release a chart with (workflow "Private" in
# docs/workflows.md): the tag's version on a release tag (v1.2.3 → 1.2.3),
# else Chart.yaml's version as a snapshot of this commit
# (1.2.3-snapshot.<short commit>), so every commit can be deployed and
# tags give final versions.
#
#   charter release -u "$DEST" --version "$(examples/ci/snapshot-version.sh charts/web)" charts/web
set -euo pipefail
chart=${1:?usage: snapshot-version.sh CHART_DIR}
if tag=$(git describe --tags --exact-match 2>/dev/null); then
	echo "${tag#v}"
	exit 0
fi
base=$(sed -n 's/^version:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' "$chart/Chart.yaml" | head -n1)
echo "${base%%-*}-snapshot.$(git rev-parse --short HEAD)"
