package server

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/natsforge/natsforge/broker/conf"
)

// defaultConfigPollInterval is how often the config file's content is checked
// when no file system event says so sooner.
const defaultConfigPollInterval = time.Second

// configWatcher notices when the config file's content changes on disk.
//
// What counts is the digest of the content read through the path (of the
// parts joined, for a parts manifest: conf.ReadConfig), not any
// event on the path itself: a Kubernetes Secret volume is updated by swapping
// a `..data` symlink in the mount directory, which produces no event on the
// file's own path, and reading through the path always resolves the current
// target. Events on the directory (fsnotify) make the check immediate; a poll
// every interval catches what events miss (or where they are unavailable).
// Comparing with the last content seen, not the last content loaded, makes a
// refused config cost one reload attempt rather than one per check.
type configWatcher struct {
	path     string
	interval time.Duration
	onChange func(digest string)
	last     [sha256.Size]byte
	ready    chan struct{} // closed once the directory watch is set up (or failed)
	stop     chan struct{}
	done     chan struct{}
}

// configSettle is how long the directory must stay quiet after an event
// before the file is read, so that an editor's write in several steps is not
// read (and refused) half done.
const configSettle = 50 * time.Millisecond

func newConfigWatcher(path string, interval time.Duration, onChange func(digest string)) *configWatcher {
	if interval <= 0 {
		interval = defaultConfigPollInterval
	}
	w := &configWatcher{path: path, interval: interval, onChange: onChange,
		ready: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	if b, err := conf.ReadConfig(path); err == nil {
		w.last = sha256.Sum256(b)
	}
	return w
}

func (w *configWatcher) run() {
	defer close(w.done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fw, err := fsnotify.NewWatcher(); err == nil {
		defer func() { _ = fw.Close() }() // stops the watch; nothing to flush
		if fw.Add(filepath.Dir(w.path)) == nil {
			events, errs = fw.Events, fw.Errors
		}
	}
	close(w.ready)
	poll := time.NewTicker(w.interval)
	defer poll.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-events:
			settle.Reset(configSettle)
		case err := <-errs:
			// The watch lost events (its queue overflowed, say); the error
			// tells no more than that. Look once things settle.
			_ = err
			settle.Reset(configSettle)
		case <-settle.C:
			w.check()
		case <-poll.C:
			w.check()
		}
	}
}

// check reloads through onChange when the content differs from the last seen.
func (w *configWatcher) check() {
	b, err := conf.ReadConfig(w.path)
	if err != nil {
		// Mid-swap, briefly missing, or parts of different writes (a parts
		// manifest whose digest does not match yet): look again later.
		return
	}
	if d := sha256.Sum256(b); d != w.last {
		w.last = d
		w.onChange(hex.EncodeToString(d[:]))
	}
}

func (w *configWatcher) close() {
	close(w.stop)
	<-w.done
}
