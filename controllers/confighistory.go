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
	"slices"
	"strings"
)

// configHistoryLength is how many config hashes are remembered. A pod that
// serves a config older than all of them is counted as serving no user's
// password: it is at least that many writes behind.
const configHistoryLength = 64

// configHistory is the hashes of the last configs written, oldest first. With
// it a pod's config digest tells which passwords that pod serves: every one
// whose fingerprint record's ConfigHash is that config or an earlier one.
// This is what lets a NatsUser report how many pods serve it without its
// status changing whenever another user's password does.
type configHistory []string

func parseConfigHistory(b []byte) configHistory {
	return strings.Fields(string(b))
}

func (h configHistory) marshal() []byte {
	return []byte(strings.Join(h, "\n"))
}

// add appends hash when it is not already the newest, keeping the last
// configHistoryLength.
func (h configHistory) add(hash string) configHistory {
	if len(h) > 0 && h[len(h)-1] == hash {
		return h
	}
	h = append(slices.DeleteFunc(slices.Clone(h), func(s string) bool { return s == hash }), hash)
	if len(h) > configHistoryLength {
		h = h[len(h)-configHistoryLength:]
	}
	return h
}

// serves tells whether a pod serving the config served carries a password
// first carried by the config since: served is since or later. A since that
// is no longer remembered is older than every remembered config; a served
// that is not remembered is older still (or unknown), and carries nothing.
func (h configHistory) serves(served, since string) bool {
	s := slices.Index(h, served)
	if s < 0 {
		return false
	}
	return s >= slices.Index(h, since) // -1 when forgotten or empty
}
