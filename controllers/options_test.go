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

import "testing"

func TestTheGoMemoryLimitIsNineTenthsOfTheContainersUnlessGOMEMLIMITIsSet(t *testing.T) {
	for _, c := range []struct {
		env     map[string]string
		want    int64
		wantErr bool
	}{
		{map[string]string{MemoryLimitEnv: "536870912"}, 483183819, false},
		{map[string]string{MemoryLimitEnv: " 536870912\n"}, 483183819, false},
		{map[string]string{MemoryLimitEnv: "536870912", "GOMEMLIMIT": "100MiB"}, 0, false},
		{map[string]string{MemoryLimitEnv: "512Mi"}, 0, true},
		{map[string]string{MemoryLimitEnv: "0"}, 0, true},
		{map[string]string{}, 0, false},
	} {
		got, err := MemoryLimit(func(k string) string { return c.env[k] })
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("MemoryLimit(%v) = %d, %v; want %d, error %v", c.env, got, err, c.want, c.wantErr)
		}
	}
}
