package server

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// kubeSecretVolume lays out a directory as the kubelet's atomic writer does:
// the file is a symlink through `..data`, itself a symlink to a timestamped
// directory; an update writes a new directory and swaps `..data`.
type kubeSecretVolume struct {
	dir string
	gen int
}

func newKubeSecretVolume(t *testing.T, name string, content []byte) (*kubeSecretVolume, string) {
	t.Helper()
	v := &kubeSecretVolume{dir: t.TempDir()}
	v.update(t, name, content)
	if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
		t.Fatal(err)
	}
	return v, filepath.Join(v.dir, name)
}

func (v *kubeSecretVolume) update(t *testing.T, name string, content []byte) {
	t.Helper()
	v.gen++
	ts := filepath.Join(v.dir, "..2026_11_26_"+string(rune('a'+v.gen)))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, name), content, 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestConfigWatcherNoticesAKubernetesSecretVolumeSwap(t *testing.T) {
	vol, path := newKubeSecretVolume(t, "nats.conf", []byte("port: 4222\n"))
	changed := make(chan struct{}, 10)
	w := newConfigWatcher(path, 10*time.Millisecond, func(string) { changed <- struct{}{} })
	go w.run()
	defer w.close()

	select {
	case <-changed:
		t.Fatal("reported a change before anything changed")
	case <-time.After(50 * time.Millisecond):
	}
	vol.update(t, "nats.conf", []byte("port: 4223\n"))
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the ..data swap went unnoticed")
	}
	vol.update(t, "nats.conf", []byte("port: 4223\n"))
	select {
	case <-changed:
		t.Fatal("an update with the same content was reported")
	case <-time.After(50 * time.Millisecond):
	}
}

func TestConfigWatcherReactsToTheSwapBeforeItsNextPoll(t *testing.T) {
	vol, path := newKubeSecretVolume(t, "nats.conf", []byte("port: 4222\n"))
	changed := make(chan struct{}, 10)
	w := newConfigWatcher(path, time.Hour, func(string) { changed <- struct{}{} })
	go w.run()
	defer w.close()
	<-w.ready
	vol.update(t, "nats.conf", []byte("port: 4223\n"))
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("the swap went unnoticed without polling")
	}
}

// swapFiles writes files into a new timestamped directory of vol and swaps
// `..data` to it, as the kubelet updates a projected volume: every file at
// once.
func (v *kubeSecretVolume) swapFiles(t *testing.T, files map[string][]byte) {
	t.Helper()
	v.gen++
	ts := filepath.Join(v.dir, "..2026_12_01_"+string(rune('a'+v.gen)))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(ts, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(v.dir, name)); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// inParts is config cut in two, with its manifest, as volume files.
func inParts(config string) map[string][]byte {
	half := len(config) / 2
	sum := sha256.Sum256([]byte(config))
	return map[string][]byte{
		"nats.conf":   conf.RenderPartsManifest(hex.EncodeToString(sum[:]), []string{"nats.conf.1", "nats.conf.2"}),
		"nats.conf.1": []byte(config[:half]),
		"nats.conf.2": []byte(config[half:]),
	}
}

func TestConfigWatcherAppliesAConfigInPartsOnlyWhenAllPartsAgree(t *testing.T) {
	// They differ in both halves, so that a mix of the two is neither.
	const v1, v2 = "port: 4222\nmax_payload: 1024\n", "port: 4223\nmax_payload: 2048\n"
	vol := &kubeSecretVolume{dir: t.TempDir()}
	vol.swapFiles(t, inParts(v1))
	path := filepath.Join(vol.dir, "nats.conf")
	changed := make(chan string, 10)
	w := newConfigWatcher(path, 10*time.Millisecond, func(d string) { changed <- d })
	go w.run()
	defer w.close()
	<-w.ready

	// The kubelet mixed two writes in one swap: the new manifest with an
	// old part. Nothing is applied.
	mixed := inParts(v2)
	mixed["nats.conf.2"] = inParts(v1)["nats.conf.2"]
	vol.swapFiles(t, mixed)
	select {
	case d := <-changed:
		t.Fatalf("a half-updated set of parts was reported (digest %s)", d)
	case <-time.After(200 * time.Millisecond):
	}
	// The next swap brings the whole set: reported once, with the digest of
	// the whole config, as the operator computes it.
	vol.swapFiles(t, inParts(v2))
	sum := sha256.Sum256([]byte(v2))
	select {
	case d := <-changed:
		if d != hex.EncodeToString(sum[:]) {
			t.Errorf("digest %s, want the whole config's %x", d, sum)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the consistent set went unnoticed")
	}
}
