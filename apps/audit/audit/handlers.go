package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/goplt/goplt/apps/audit/chain"
	"github.com/goplt/goplt/apps/audit/client"
	"github.com/goplt/goplt/internal/kernel"
)

// filter is a parsed query: every field optional.
type filter struct {
	actor, action, resource, outcome string
	from, to                         *time.Time
	after                            int64
	limit                            int
}

// parseFilter reads ?actor=&action=&resource=&outcome=&from=&to=&cursor=&limit=; on failure
// it has answered.
func parseFilter(w http.ResponseWriter, r *http.Request, maxLimit int) (filter, bool) {
	q := r.URL.Query()
	f := filter{actor: q.Get("actor"), action: q.Get("action"), resource: q.Get("resource"), outcome: q.Get("outcome"), limit: maxLimit}
	for _, v := range []string{f.actor, f.action, f.resource, f.outcome} {
		if len(v) > 512 {
			kernel.WriteError(w, r, http.StatusBadRequest, "invalid_filter", "filter values are at most 512 bytes")
			return f, false
		}
	}
	for _, t := range []struct {
		name string
		dst  **time.Time
	}{{"from", &f.from}, {"to", &f.to}} {
		if s := q.Get(t.name); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				kernel.WriteError(w, r, http.StatusBadRequest, "invalid_time", t.name+" must be an RFC 3339 time")
				return f, false
			}
			*t.dst = &v
		}
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			kernel.WriteError(w, r, http.StatusBadRequest, "invalid_limit", "limit must be 1-"+strconv.Itoa(maxLimit))
			return f, false
		}
		f.limit = n
	}
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		var pos int64
		if err == nil && strings.HasPrefix(string(b), "a:") {
			pos, err = strconv.ParseInt(string(b[2:]), 10, 64)
		} else {
			err = strconv.ErrSyntax
		}
		if err != nil || pos < 0 {
			kernel.WriteError(w, r, http.StatusBadRequest, "invalid_cursor", "cursor is not one this API returned")
			return f, false
		}
		f.after = pos
	}
	return f, true
}

const selectEntries = `SELECT pos, event_id, topic, source, actor, action, resource, outcome, occurred_at, recorded_at, payload
	FROM log WHERE pos > $1
	AND ($2 = '' OR actor = $2) AND ($3 = '' OR action = $3) AND ($4 = '' OR resource = $4) AND ($5 = '' OR outcome = $5)
	AND ($6::timestamptz IS NULL OR occurred_at >= $6) AND ($7::timestamptz IS NULL OR occurred_at < $7)
	ORDER BY pos LIMIT $8`

// scanEntry reads one row of selectEntries as the API returns it (client.Entry: the payload as
// JSON, not as the string it is stored as).
func scanEntry(rows pgx.Rows) (client.Entry, error) {
	var e client.Entry
	var payload string
	err := rows.Scan(&e.Pos, &e.EventID, &e.Topic, &e.Source, &e.Actor, &e.Action, &e.Resource, &e.Outcome, &e.OccurredAt, &e.RecordedAt, &payload)
	e.Payload = json.RawMessage(payload)
	return e, err
}

func (m *Module) query(w http.ResponseWriter, r *http.Request) {
	f, ok := parseFilter(w, r, 500)
	if !ok {
		return
	}
	rows, err := m.k.DB().Query(r.Context(), selectEntries, f.after, f.actor, f.action, f.resource, f.outcome, f.from, f.to, f.limit+1)
	if err != nil {
		m.k.Fail(w, r, "query", err)
		return
	}
	defer rows.Close()
	out := []client.Entry{}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			m.k.Fail(w, r, "query", err)
			return
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		m.k.Fail(w, r, "query", err)
		return
	}
	resp := client.Page{Entries: out}
	if len(out) > f.limit {
		resp.Entries = out[:f.limit]
		resp.NextCursor = base64.RawURLEncoding.EncodeToString([]byte("a:" + strconv.FormatInt(out[f.limit-1].Pos, 10)))
	}
	kernel.WriteJSON(w, http.StatusOK, resp)
}

// export streams every matching entry as JSON lines, in pages, without holding them all.
func (m *Module) export(w http.ResponseWriter, r *http.Request) {
	f, ok := parseFilter(w, r, 1000)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	fl, _ := w.(http.Flusher)
	for {
		rows, err := m.k.DB().Query(r.Context(), selectEntries, f.after, f.actor, f.action, f.resource, f.outcome, f.from, f.to, 1000)
		if err != nil {
			m.k.Log().ErrorContext(r.Context(), "export failed", "err", err)
			return // the stream ends early; the client sees a short, valid prefix
		}
		n := 0
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				rows.Close()
				return
			}
			if enc.Encode(e) != nil {
				rows.Close()
				return
			}
			f.after = e.Pos
			n++
		}
		rows.Close()
		if fl != nil {
			fl.Flush()
		}
		if n < 1000 {
			return
		}
	}
}

func (m *Module) verify(w http.ResponseWriter, r *http.Request) {
	// Its own witness file too: the API's answer does not rest on the database alone.
	res, err := chain.Verify(r.Context(), m.k.DB(), m.key.Public().(ed25519.PublicKey), chain.ReadWitnessDir(m.witnessDir))
	if err != nil {
		m.k.Fail(w, r, "verify", err)
		return
	}
	kernel.WriteJSON(w, http.StatusOK, res)
}

func (m *Module) deadLetters(w http.ResponseWriter, r *http.Request) {
	rows, err := m.k.DB().Query(r.Context(), `SELECT event_id, topic, received_at, event FROM dead_letters ORDER BY seq DESC LIMIT 500`)
	if err != nil {
		m.k.Fail(w, r, "dead letters", err)
		return
	}
	defer rows.Close()
	type letter struct {
		EventID    string    `json:"eventId"`
		Topic      string    `json:"topic"`
		ReceivedAt time.Time `json:"receivedAt"`
		Event      string    `json:"event"`
	}
	out := []letter{}
	for rows.Next() {
		var l letter
		if err := rows.Scan(&l.EventID, &l.Topic, &l.ReceivedAt, &l.Event); err != nil {
			m.k.Fail(w, r, "dead letters", err)
			return
		}
		out = append(out, l)
	}
	kernel.WriteJSON(w, http.StatusOK, map[string]any{"deadLetters": out})
}
