# make bench: natsforge's broker against nats-server, side by side, and the
# operator's reconcile loop against envtest. The harness is test/bench (build
# tag bench, so `make test` never builds it); it writes docs/benchmarks.md and
# docs/benchmarks.png. BENCH_FLAGS passes options to it, for example
# BENCH_FLAGS='-quick' for a smoke run or BENCH_FLAGS='-only pub|fan'.
# Profile our broker under one of its loads with
#   go run -tags bench ./test/bench -profile pub16   (see -help for the loads)

BENCH_FLAGS ?=

.PHONY: bench
bench: k8s-binaries ## Benchmark the broker against nats-server and the operator's reconcile; writes docs/benchmarks.{md,png}.
	go run -tags bench ./test/bench -command '$(strip make bench $(BENCH_FLAGS))' \
		-md docs/benchmarks.md -png docs/benchmarks.png -save bin/bench-results.json $(BENCH_FLAGS)

.PHONY: bench-render
bench-render: ## Rewrite docs/benchmarks.{md,png} from the last `make bench` results (bin/bench-results.json) without measuring.
	go run -tags bench ./test/bench -render bin/bench-results.json -md docs/benchmarks.md -png docs/benchmarks.png
