package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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
