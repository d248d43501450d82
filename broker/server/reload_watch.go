package server

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"time"
)

// defaultConfigPollInterval is how often the config file's content is checked.
const defaultConfigPollInterval = time.Second

// configWatcher notices when the config file's content changes on disk.
//
// It polls the digest of the file's content rather than watching inotify
// events: a Kubernetes Secret volume is updated by swapping a `..data` symlink
// in the mount directory, which produces no event on the file's own path, and
// reading through the path always resolves the current target. Comparing with
// the last content seen, not the last content loaded, makes a refused config
// cost one reload attempt rather than one per poll.
type configWatcher struct {
	path     string
	interval time.Duration
	onChange func(digest string)
	last     [sha256.Size]byte
	stop     chan struct{}
	done     chan struct{}
}

func newConfigWatcher(path string, interval time.Duration, onChange func(digest string)) *configWatcher {
	if interval <= 0 {
		interval = defaultConfigPollInterval
	}
	w := &configWatcher{path: path, interval: interval, onChange: onChange,
		stop: make(chan struct{}), done: make(chan struct{})}
	if b, err := os.ReadFile(path); err == nil {
		w.last = sha256.Sum256(b)
	}
	return w
}

func (w *configWatcher) run() {
	defer close(w.done)
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		b, err := os.ReadFile(w.path)
		if err != nil {
			// Mid-swap or briefly missing: look again next tick.
			continue
		}
		if d := sha256.Sum256(b); d != w.last {
			w.last = d
			w.onChange(hex.EncodeToString(d[:]))
		}
	}
}

func (w *configWatcher) close() {
	close(w.stop)
	<-w.done
}
