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

package resources

import (
	"bytes"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
)

// A Secret holds at most 1 MiB. The config of a cluster with thousands of
// users (10,000: about 1 MB of bcrypt hashes and names, plus their
// permissions), and the fingerprint records beside it (about 2 MB), do not
// fit one. When they do not, the config is cut into parts of at most
// ConfigPartSize bytes, each in a Secret "<name>-config-<i>" (i from 1), and
// the config Secret's nats.conf becomes a manifest naming the parts and the
// SHA-256 of the whole (broker/conf/parts.go); the fingerprint records are cut
// likewise, their first part staying in the config Secret. The pods mount the
// config Secret and up to MaxConfigParts part Secrets in one projected
// volume, so that the kubelet swaps all the files at once; the broker checks
// the digest before it loads the joined parts, in case a swap mixed Secrets
// of two writes. A config that fits keeps the single file it always had.

// ConfigPartSize is the most bytes of the config (and of the fingerprint
// records) one Secret carries: two such halves stay under 1 MiB.
const ConfigPartSize = 400 << 10

// MaxConfigParts is how many part Secrets the pods mount (optional, so that
// the missing ones cost nothing): a config of up to MaxConfigParts x
// ConfigPartSize bytes (6 MB) can be delivered.
const MaxConfigParts = 15

// ComponentConfigPart is the LabelComponent of the config part Secrets.
const ComponentConfigPart = "config-part"

// ConfigPartSecretName names the Secret of config part i (from 1).
func ConfigPartSecretName(nc *v1alpha1.NatsCluster, i int) string {
	return ConfigSecretName(nc) + "-" + strconv.Itoa(i)
}

// ConfigPartKey is the key (and the file name in the pods) of config part i.
func ConfigPartKey(i int) string { return ConfigKey + "." + strconv.Itoa(i) }

// ConfigSecrets are the config Secret and the part Secrets (none when
// everything fits the config Secret) that carry config, the previous-passwords
// file (in the config Secret), the fingerprint records and the config history.
func ConfigSecrets(nc *v1alpha1.NatsCluster, config, previousPasswords, fingerprints, history []byte) (*corev1.Secret, []*corev1.Secret, error) {
	main := config
	var configParts [][]byte
	if len(config) > ConfigPartSize {
		configParts = cutAtLines(config, ConfigPartSize)
		files := make([]string, len(configParts))
		for i := range configParts {
			files[i] = ConfigPartKey(i + 1)
		}
		main = conf.RenderPartsManifest(ConfigDigest(config), files)
	}
	recordParts := cut(fingerprints, ConfigPartSize)
	n := max(len(configParts), len(recordParts)-1)
	if n > MaxConfigParts {
		return nil, nil, fmt.Errorf("the config (%d bytes) and fingerprint records (%d bytes) need %d Secrets of %d bytes; the pods mount at most %d",
			len(config), len(fingerprints), n+1, ConfigPartSize, MaxConfigParts+1)
	}
	secret := ConfigSecret(nc, main, previousPasswords, recordParts[0], history)
	parts := make([]*corev1.Secret, n)
	for i := range parts {
		s := &corev1.Secret{
			ObjectMeta: objectMeta(nc, ConfigPartSecretName(nc, i+1), ComponentConfigPart),
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{},
		}
		if i < len(configParts) {
			s.Data[ConfigPartKey(i+1)] = configParts[i]
		}
		if i+1 < len(recordParts) {
			s.Data[FingerprintsKey] = recordParts[i+1]
		}
		parts[i] = s
	}
	return secret, parts, nil
}

// JoinFingerprints is the fingerprint records of a config Secret and its
// parts, in order.
func JoinFingerprints(secret *corev1.Secret, parts []*corev1.Secret) []byte {
	b := bytes.Clone(secret.Data[FingerprintsKey])
	for _, p := range parts {
		b = append(b, p.Data[FingerprintsKey]...)
	}
	return b
}

// cut cuts b into pieces of at most size bytes; one empty piece for an
// empty b.
func cut(b []byte, size int) [][]byte {
	out := [][]byte{}
	for len(b) > size {
		out = append(out, b[:size])
		b = b[size:]
	}
	return append(out, b)
}

// cutAtLines cuts b into pieces of at most size bytes, each ending at a line
// end where there is one (a part is then readable on its own).
func cutAtLines(b []byte, size int) [][]byte {
	var out [][]byte
	for len(b) > size {
		end := bytes.LastIndexByte(b[:size], '\n') + 1
		if end == 0 {
			end = size
		}
		out = append(out, b[:end])
		b = b[end:]
	}
	if len(b) > 0 {
		out = append(out, b)
	}
	return out
}

// configVolume mounts the config file and the previous-passwords file of the
// config Secret (not its fingerprints) and the config parts, when there are
// any, in one projected volume (one directory the
// kubelet swaps at once, not subPaths, so that it is updated in place). The
// part Secrets are optional: a config that fits one Secret has none.
func configVolume(nc *v1alpha1.NatsCluster) corev1.Volume {
	sources := []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{
		LocalObjectReference: corev1.LocalObjectReference{Name: ConfigSecretName(nc)},
		Items: []corev1.KeyToPath{
			{Key: ConfigKey, Path: ConfigKey},
			{Key: PreviousPasswordsKey, Path: PreviousPasswordsKey},
		},
	}}}
	for i := 1; i <= MaxConfigParts; i++ {
		sources = append(sources, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
			LocalObjectReference: corev1.LocalObjectReference{Name: ConfigPartSecretName(nc, i)},
			Items:                []corev1.KeyToPath{{Key: ConfigPartKey(i), Path: ConfigPartKey(i)}},
			Optional:             ptr.To(true),
		}})
	}
	return corev1.Volume{
		Name: "config",
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources:     sources,
			DefaultMode: ptr.To[int32](0o440),
		}},
	}
}
