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
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// TestKubectlExplainReadsTheGodoc checks that the field documentation reaches
// kubectl explain, with the kubectl of the envtest binaries.
func TestKubectlExplainReadsTheGodoc(t *testing.T) {
	needAPIServer(t)
	path := filepath.Join(assetsDir(), "kubectl")
	if _, err := os.Stat(path); err != nil {
		if testing.Short() {
			t.Skipf("no kubectl in %s", assetsDir())
		}
		t.Fatalf("no kubectl in %s (run hack/k8s-binaries.sh etcd kube-apiserver kubectl): %v", assetsDir(), err)
	}
	user, err := testEnv.AddUser(envtest.User{Name: "explainer", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubectl, err := user.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	kubectl.Path = path
	for field, want := range map[string]string{
		"nc.spec.auth.users":                   "Only bcrypt hashes of the passwords reach the broker",
		"nc.spec.auth.users.passwordSecretRef": "rotates the password on",
		"nc.spec.config.lameDuckDuration":      "termination grace period",
		"nc.status.conditions":                 "ConfigPropagated",
		"nc.spec.auth.allowedUserNamespaces":   "allowedRoutes",
		"nu.spec.username":                     "the oldest (by creationTimestamp, then namespace/name) wins",
		"nu.spec.passwordSecretRef":            "<metadata.name>-user-credentials",
		"nu.status.servingPods":                "configHash, or a later one",
	} {
		// The API server publishes a new CRD's OpenAPI a moment after the CRD
		// is established.
		var out []byte
		eventually(t, timeout, func() error {
			stdout, stderr, err := kubectl.Run("explain", field, "--cache-dir", t.TempDir())
			if err != nil {
				msg, _ := io.ReadAll(stderr)
				return fmt.Errorf("kubectl explain %s: %v: %s", field, err, msg)
			}
			out, _ = io.ReadAll(stdout)
			return nil
		})
		if !strings.Contains(strings.Join(strings.Fields(string(out)), " "), want) {
			t.Errorf("kubectl explain %s lacks %q:\n%s", field, want, out)
		}
	}
}
