# make bench: natsforge's broker against nats-server, side by side, and the
# operator's reconcile loop against envtest. The harness is test/bench (build
# tag bench, so `make test` never builds it); it writes its section of
# docs/benchmarks.md (keeping make bench-cluster's, below) and
# docs/benchmarks.png. BENCH_FLAGS passes options to it, for example
# BENCH_FLAGS='-quick' for a smoke run or BENCH_FLAGS='-only pub|fan'.
# Profile our broker under one of its loads with
#   go run -tags bench ./test/bench -profile pub16   (see -help for the loads)

BENCH_FLAGS ?=

.PHONY: bench
bench: k8s-binaries ## Benchmark the broker against nats-server and the operator's reconcile; writes docs/benchmarks.{md,png}.
	go run -tags bench ./test/bench -command 'make bench$(if $(strip $(BENCH_FLAGS)), BENCH_FLAGS="$(strip $(BENCH_FLAGS))")' \
		-md docs/benchmarks.md -png docs/benchmarks.png -save bin/bench-results.json $(BENCH_FLAGS)

.PHONY: bench-render
bench-render: ## Rewrite docs/benchmarks.{md,png} from the last `make bench` results (bin/bench-results.json) without measuring.
	go run -tags bench ./test/bench -render bin/bench-results.json -md docs/benchmarks.md -png docs/benchmarks.png

# make bench-cluster: password rotations on the local cluster (hack/local-cluster,
# brought up as make e2e does; take it down with make cluster-down). A 3-broker
# NatsCluster installed through the chart has one user's password Secret edited
# 20 times; every pod is probed at its own address until it refuses the old
# password and accepts the new one; the operator's and brokers' logs say where
# the time went. Then one NatsCluster with 10,000 NatsUsers, one of whose
# passwords changes 5 times, and the operator's RSS. Writes only its own section
# of docs/benchmarks.md (make bench keeps it) and docs/benchmarks-cluster.png.
# BENCH_CLUSTER_FLAGS='-quick' checks the harness in minutes;
# '-scale-users 1000' or '-scale-users 0' shrink or skip the NatsUser part.
BENCH_CLUSTER_FLAGS ?=
# Simply expanded, one value per run: the tag pushed is the tag installed.
BENCH_CLUSTER_TAG := $(or $(BENCH_CLUSTER_TAG),bench-$(shell date +%s))

.PHONY: bench-cluster
bench-cluster: $(HELM) ## Rotation latency on the local cluster (brings it up) and one rotation among 10,000 NatsUsers; writes its section of docs/benchmarks.md.
	hack/local-cluster/up.sh
	$(MAKE) --no-print-directory cluster-images IMAGE_TAG=$(BENCH_CLUSTER_TAG)
	@# Built outside the cluster's network namespace (it reaches no module proxy), run inside it (pod addresses).
	go build -tags bench -o $(LOCALBIN)/bench ./test/bench
	hack/local-cluster/exec.sh $(LOCALBIN)/bench -cluster -image-tag $(BENCH_CLUSTER_TAG) -helm $(HELM) \
		-command 'make bench-cluster$(if $(strip $(BENCH_CLUSTER_FLAGS)), BENCH_CLUSTER_FLAGS="$(strip $(BENCH_CLUSTER_FLAGS))")' \
		-md docs/benchmarks.md -png docs/benchmarks-cluster.png -save bin/bench-cluster-results.json $(BENCH_CLUSTER_FLAGS)
