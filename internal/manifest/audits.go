package manifest

import (
	"fmt"
	"sort"
)

// expandAudits gives the auditor (the module whose events declare audits) a subscription to
// every topic a publication marks audit: true, at /events/<topic>, so that a module asks for
// its events to be audited in its own manifest and nothing else is edited by hand. Each added
// subscription is reported at the publication that asked for it.
func expandAudits(set *Set) Problems {
	var ps Problems
	var auditor *Module
	for _, m := range set.Modules {
		if m.Spec.Events.Audits == nil {
			continue
		}
		if auditor != nil {
			ps = append(ps, Problem{Pos: m.PosOf("/spec/events/audits"), Rule: "one-auditor", Fix: "keep events.audits in one module",
				Msg: fmt.Sprintf("module %s is already the auditor (%s)", auditor.Metadata.Name, auditor.File())})
			continue
		}
		auditor = m
	}
	type audited struct {
		topic string
		pos   Position
	}
	var topics []audited
	for _, m := range set.Modules {
		for i, p := range m.Spec.Events.Publishes {
			if !p.Audit {
				continue
			}
			pos := m.PosOf(fmt.Sprintf("/spec/events/publishes/%d/audit", i))
			if auditor == nil {
				ps = append(ps, Problem{Pos: pos, Rule: "audit-no-auditor", Fix: "add events.audits to the audit module's manifest",
					Msg: fmt.Sprintf("topic %s asks to be audited, but no module declares events.audits", p.Topic)})
				continue
			}
			topics = append(topics, audited{p.Topic, pos})
		}
	}
	if auditor == nil || len(ps) > 0 {
		return ps
	}
	sort.Slice(topics, func(i, j int) bool { return topics[i].topic < topics[j].topic })
	a := auditor.Spec.Events.Audits
	for _, t := range topics {
		dup := false
		for _, s := range auditor.Spec.Events.Subscribes {
			dup = dup || s.Topic == t.topic
		}
		if dup {
			ps = append(ps, Problem{Pos: t.pos, Rule: "audit-subscribed", Fix: "remove the auditor's own subscription to it",
				Msg: fmt.Sprintf("topic %s is audited and also subscribed by the auditor %s by hand", t.topic, auditor.Metadata.Name)})
			continue
		}
		i := len(auditor.Spec.Events.Subscribes)
		auditor.Spec.Events.Subscribes = append(auditor.Spec.Events.Subscribes, Subscription{
			Topic: t.topic, Route: "/events/" + t.topic, DeadLetterTopic: a.DeadLetterTopic, Bulk: a.Bulk,
		})
		// Problems and sources about the added subscription point at what asked for it.
		auditor.doc.pos[fmt.Sprintf("/spec/events/subscribes/%d", i)] = t.pos
	}
	return ps
}
