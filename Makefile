# omni_agent developer targets. Every target that needs the environment
# runs the idempotent set-up first, so each works on a fresh machine.
.PHONY: setup build demo test test-unit bench clean

setup:
	scripts/setup.sh

build:
	scripts/build.sh

# The main job: spoken commands -> transcripts -> results -> goal_pose, real nodes over loopback DDS.
demo: setup
	scripts/env.sh omni-agent run

test: setup
	scripts/env.sh python -m pytest

test-unit: setup
	scripts/env.sh python -m pytest test/unit

bench: setup
	scripts/env.sh python scripts/benchmark_latency.py --markdown docs/benchmarks.md

clean:
	rm -rf build install log
