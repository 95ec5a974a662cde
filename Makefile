# omni_agent developer targets. Every target that needs the environment
# runs the idempotent set-up first, so each works on a fresh machine.
.PHONY: setup build demo test test-unit bench clean

setup:
	scripts/setup.sh

build:
	scripts/build.sh

# The main job, in two parts, real nodes over loopback DDS:
# 1. spoken commands -> transcripts -> results -> goal_pose ("go forward ten meters", "go to the kitchen");
# 2. "go to the kitchen and bring me the apple" spoken into the simulated robot, closed loop,
#    with video, path plot, MCAP recording and summary in results/demo-fetch/.
demo: setup
	scripts/env.sh omni-agent run
	scripts/env.sh omni-agent sim-run --out results/demo-fetch

test: setup
	scripts/env.sh python -m pytest

test-unit: setup
	scripts/env.sh python -m pytest test/unit

bench: setup
	scripts/env.sh python scripts/benchmark_latency.py --markdown docs/benchmarks.md
	scripts/env.sh python scripts/benchmark_sim.py --markdown docs/benchmarks.md

clean:
	rm -rf build install log
