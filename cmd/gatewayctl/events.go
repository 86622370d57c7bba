package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/rampartgw/rampart/record"
)

const (
	// followLimit is how many events one poll of `events tail -f` asks
	// for: the API's maximum.
	followLimit = 10_000
	// followOverlap is how far before the newest event seen each poll
	// looks again. Replicas stamp events with their own clocks and flush
	// them in batches, so an event can reach the log after a newer one;
	// the overlap catches it and deduplication hides what was printed.
	followOverlap = 5 * time.Second
)

func eventsTailCmd(fs *flag.FlagSet) action {
	client := fs.String("client", "", "only events of this client `IP` or client key")
	detection := fs.String("detection", "", "only events of this detection `name`")
	typ := fs.String("type", "", "only events of this `type`: request_blocked, would_block,\nclient_blocklisted, client_unbanned or detection_failed")
	since := fs.String("since", "15m", "only events since a duration ago or an RFC 3339 `time`; empty: no bound")
	n := fs.Int("n", 50, "show at most the `N` latest events (1..10000)")
	follow := fs.Bool("f", false, "follow: poll every second and print new events until interrupted")
	return func(ctx context.Context, a *app, _ []string) error {
		if *n < 1 || *n > followLimit {
			return usagef(nil, "-n %d: want 1..%d", *n, followLimit)
		}
		if err := checkSince(*since); err != nil {
			return err
		}
		q := url.Values{}
		for k, v := range map[string]string{"client": *client, "detection": *detection, "type": *typ, "since": *since} {
			if v != "" {
				q.Set(k, v)
			}
		}
		q.Set("limit", strconv.Itoa(*n))
		if *follow {
			return a.follow(ctx, q)
		}
		data, err := a.get(ctx, "/v1/events", q)
		if err != nil || a.json {
			return a.result(data, err)
		}
		evs, err := decodeEvents(data)
		if err != nil {
			return err
		}
		slices.Reverse(evs) // the API answers newest first; tail prints oldest first
		return writeEvents(a.stdout, evs)
	}
}

// checkSince accepts what the API accepts: a positive duration or an
// RFC 3339 time.
func checkSince(s string) error {
	if s == "" {
		return nil
	}
	if d, err := record.ParseDuration(s); err == nil && d > 0 {
		return nil
	}
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return nil
	}
	return usagef(nil, "-since %q: want a duration such as 15m or an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
}

// event is an API event with its JSON as the API sent it, which -o json
// prints unchanged.
type event struct {
	eventView
	raw json.RawMessage
}

func decodeEvents(data []byte) ([]event, error) {
	var l struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := decode(data, &l); err != nil {
		return nil, err
	}
	evs := make([]event, len(l.Events))
	for i, raw := range l.Events {
		evs[i].raw = raw
		if err := decode(raw, &evs[i].eventView); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

// eventKey identifies an event across polls.
type eventKey struct {
	time                   int64
	requestID, typ, client string
}

func (e *event) key() eventKey {
	return eventKey{e.Time.UnixNano(), e.RequestID, e.Type, e.Client}
}

// follow prints the latest events, then polls for new ones until ctx ends
// (Ctrl-C), which is a success. Each batch is printed oldest first. A
// failed poll is reported and retried, so that a gateway restart does not
// end the tail; a refused one (bad token, bad filter) ends it.
func (a *app) follow(ctx context.Context, q url.Values) error {
	out := newEventStream(a)
	seen := map[eventKey]time.Time{}
	// floor is the newest event of the first answer: older events that
	// turn up later were left out by -n, not new.
	var newest, floor time.Time
	first, failing := true, false
	for {
		data, err := a.get(ctx, "/v1/events", q)
		if ctx.Err() != nil {
			return nil
		}
		var evs []event
		if err == nil {
			evs, err = decodeEvents(data)
		}
		var ae *apiError
		switch {
		case err != nil && (first || errors.As(err, &ae) && ae.status < 500):
			return err
		case err != nil:
			if !failing {
				fmt.Fprintf(a.stderr, "gatewayctl: %v (retrying every %v)\n", err, a.poll)
			}
			failing = true
		default:
			if failing {
				fmt.Fprintln(a.stderr, "gatewayctl: reconnected")
			}
			failing = false
			if !first && len(evs) == followLimit {
				fmt.Fprintf(a.stderr, "gatewayctl: warning: over %d events in one poll; some may be missing (narrow the filters)\n", followLimit)
			}
			var fresh []event
			for i := len(evs) - 1; i >= 0; i-- { // oldest first
				k := evs[i].key()
				if _, ok := seen[k]; ok || evs[i].Time.Before(floor) {
					continue
				}
				seen[k] = evs[i].Time
				fresh = append(fresh, evs[i])
			}
			slices.SortStableFunc(fresh, func(x, y event) int { return x.Time.Compare(y.Time) })
			if err := out.write(fresh); err != nil {
				return err
			}
			for _, e := range fresh {
				if e.Time.After(newest) {
					newest = e.Time
				}
			}
			if !newest.IsZero() {
				from := newest.Add(-followOverlap)
				q.Set("since", from.UTC().Format(time.RFC3339Nano))
				for k, t := range seen {
					if t.Before(from) {
						delete(seen, k)
					}
				}
			}
			if first {
				floor = newest
				q.Set("limit", strconv.Itoa(followLimit))
			}
			first = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.poll):
		}
	}
}

// eventStream prints events as they come: as JSON lines, or as table rows
// padded to widths that only grow, since a tabwriter cannot align rows it
// has not seen yet.
type eventStream struct {
	a      *app
	widths []int
	header bool
}

func newEventStream(a *app) *eventStream {
	return &eventStream{a: a, widths: []int{20, 18, 17, 12, 17, 6, 20, 0}}
}

func (s *eventStream) write(evs []event) error {
	var buf bytes.Buffer
	if s.a.json {
		for _, e := range evs {
			if err := json.Compact(&buf, e.raw); err != nil {
				return fmt.Errorf("formatting JSON: %w", err)
			}
			buf.WriteByte('\n')
		}
	} else {
		if !s.header {
			s.row(&buf, eventHeader)
			s.header = true
		}
		for _, e := range evs {
			s.row(&buf, eventRow(&e.eventView))
		}
	}
	_, err := s.a.stdout.Write(buf.Bytes())
	return err
}

func (s *eventStream) row(buf *bytes.Buffer, cells []string) {
	for i, c := range cells {
		if i == len(cells)-1 {
			buf.WriteString(c)
			break
		}
		w := max(s.widths[i], runeLen(c))
		s.widths[i] = w
		buf.WriteString(c)
		for range w - runeLen(c) + 2 {
			buf.WriteByte(' ')
		}
	}
	buf.WriteByte('\n')
}
