/*
Copyright 2026 The natsforge Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package controllers

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/controllers/resources"
)

// BrokerImageRepository is the broker image the operator runs by default.
const BrokerImageRepository = "natsforge/broker"

// DefaultImage is the broker image of the operator's own version.
func DefaultImage(version string) string {
	if version == "" || version == "dev" {
		return BrokerImageRepository + ":latest"
	}
	return BrokerImageRepository + ":" + version
}

// CacheOptions restrict the manager's cache to the namespaces to watch (all
// when empty) and, for Pods, to the broker pods the operator manages.
func CacheOptions(namespaces []string) cache.Options {
	opts := cache.Options{
		// Nothing reads managedFields; with 10,000 NatsUsers (and their
		// Secrets' metadata) they are a good share of the cache.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{resources.LabelManagedBy: resources.ManagedBy})},
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// MemoryLimitEnv is the environment variable the chart and config/manager
// set from the container's memory limit, in bytes.
const MemoryLimitEnv = "NATSFORGE_MEMORY_LIMIT"

// MemoryLimit is the Go runtime's soft memory limit for the operator: nine
// tenths of the container's limit (getenv(MemoryLimitEnv)), so that near
// the limit the garbage collector runs more often instead of the kernel
// killing the process; 0 (none) when GOMEMLIMIT is set (the runtime already
// obeys it) or the container's limit is not given. A value that is not a
// positive number of bytes is an error.
func MemoryLimit(getenv func(string) string) (int64, error) {
	v := strings.TrimSpace(getenv(MemoryLimitEnv))
	if getenv("GOMEMLIMIT") != "" || v == "" {
		return 0, nil
	}
	limit, err := strconv.ParseInt(v, 10, 64)
	if err != nil || limit <= 0 {
		return 0, fmt.Errorf("%s=%q: want the container's memory limit in bytes (resourceFieldRef limits.memory)", MemoryLimitEnv, v)
	}
	return limit / 10 * 9, nil
}

// ClientOptions make every read of a Secret through the manager's client go to
// the API server: the operator keeps no cache of Secret data (its Secret
// informer holds metadata only).
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}

// OperatorNamespace is the namespace the operator runs in: $POD_NAMESPACE
// (the chart's and config/manager's Deployments set it from the downward
// API), else the namespace of the mounted ServiceAccount token, else "" when
// the operator runs outside a cluster.
func OperatorNamespace() string {
	if ns := strings.TrimSpace(os.Getenv("POD_NAMESPACE")); ns != "" {
		return ns
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
