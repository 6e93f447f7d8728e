#!/usr/bin/env bash
# Builds the in-process scaling benchmark as a static Swift binary and bundles it with the two
# small C libraries it links (libxxhash, zlib), so it runs on a Linux machine without a Swift
# toolchain: copy Benchmarks/.build/scaling-bundle there and run ./run.sh. Here it runs at once.
# Usage: [ROUNDS=3] Benchmarks/scaling.sh [keys] [seconds-per-step] [thread counts...]
# The thread counts take turns ROUNDS times; the summary compares medians.
set -euo pipefail
cd "$(dirname "$0")"
swift build -c release --product ScalingBenchmark --static-swift-stdlib
bundle=.build/scaling-bundle
rm -rf "$bundle" && mkdir -p "$bundle"
cp .build/release/ScalingBenchmark "$bundle/"
for library in libxxhash.so.0 libz.so.1; do
  cp "$(ldd .build/release/ScalingBenchmark | awk -v l="$library" '$1 == l {print $3}')" "$bundle/"
done
cat > "$bundle/run.sh" <<'RUN'
#!/bin/sh
here=$(dirname "$0")
LD_LIBRARY_PATH="$here${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/ScalingBenchmark" "$@"
RUN
chmod +x "$bundle/run.sh"
mkdir -p results
"$bundle/run.sh" "$@" | tee results/scaling.txt
