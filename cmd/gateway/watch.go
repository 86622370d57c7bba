package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/rampartgw/rampart/gateway"
)

// watchFile signals changed when the file's size, modification time or
// inode changes. Polling costs one stat every interval and works on every
// file system (bind mounts and ConfigMaps included, where inotify is
// unreliable). Mount the config's directory, not the file, in containers:
// an editor's save replaces the file (a new inode), which a single-file
// bind mount never shows.
func watchFile(ctx context.Context, path string, every time.Duration, changed chan<- struct{}) {
	stamp := func() (time.Time, int64, os.FileInfo) {
		fi, err := os.Stat(path)
		if err != nil {
			return time.Time{}, -1, nil
		}
		return fi.ModTime(), fi.Size(), fi
	}
	mt, sz, fi := stamp()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m, s, nfi := stamp()
		if s < 0 || (m.Equal(mt) && s == sz && fi != nil && os.SameFile(fi, nfi)) {
			continue
		}
		mt, sz, fi = m, s, nfi
		select {
		case changed <- struct{}{}:
		default:
		}
	}
}

// watchStore pings the store every second: it closes the circuit as soon as
// Redis is back even without traffic, and reports transitions.
func watchStore(ctx context.Context, st sharedStore, m *gateway.Metrics, log *slog.Logger) {
	if !st.Shared() {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	up := true
	for {
		err := st.Ping(ctx)
		if ctx.Err() != nil {
			return
		}
		m.SetCircuitOpen(!st.Healthy())
		switch {
		case err != nil && up:
			up = false
			log.LogAttrs(ctx, slog.LevelWarn, "store_unavailable", slog.String("error", err.Error()),
				slog.String("detail", "failing open per on_store_error; known bans keep blocking from the local cache; retrying every second"))
		case err == nil && !up:
			up = true
			log.LogAttrs(ctx, slog.LevelInfo, "store_recovered")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
