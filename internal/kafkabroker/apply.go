package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/goplt/goplt/internal/brokeracl"
)

// Apply makes the broker what set says, as admin: every listed topic exists with at least its
// partitions, every user has its password (passwords: user -> password), and each user's ACLs
// are exactly the listed ones (others are deleted). It is idempotent, so `goplt run` applies
// it at every start, to a new broker or a running one. extra adds client options (TLS).
func Apply(ctx context.Context, brokers []string, admin Credentials, set *brokeracl.Set, passwords map[string]string, extra ...kgo.Opt) error {
	cl, err := kgo.NewClient(append(append(admin.ClientOpts(), kgo.SeedBrokers(brokers...)), extra...)...)
	if err != nil {
		return fmt.Errorf("broker admin client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	if err := ensureTopics(ctx, adm, set.Topics); err != nil {
		return err
	}

	var upserts []kadm.UpsertSCRAM
	for _, u := range set.Users {
		pw := passwords[u.Name]
		if pw == "" {
			return fmt.Errorf("broker user %s: no password (secret %s, key %s)", u.Name, u.Secret, u.Key)
		}
		upserts = append(upserts, kadm.UpsertSCRAM{User: u.Name, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: pw})
	}
	if len(upserts) > 0 {
		res, err := adm.AlterUserSCRAMs(ctx, nil, upserts)
		if err != nil {
			return fmt.Errorf("set broker passwords: %w", err)
		}
		if err := res.Error(); err != nil {
			return fmt.Errorf("set broker passwords: %w", err)
		}
	}

	for _, u := range set.Users {
		if err := applyACLs(ctx, cl, u); err != nil {
			return fmt.Errorf("broker user %s: %w", u.Name, err)
		}
	}
	return nil
}

// ensureTopics creates missing topics and adds partitions to those that have too few (Kafka
// never removes partitions).
func ensureTopics(ctx context.Context, adm *kadm.Client, topics []brokeracl.TopicSpec) error {
	if len(topics) == 0 {
		return nil
	}
	var names []string
	for _, t := range topics {
		names = append(names, t.Name)
	}
	have, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics {
		d, ok := have[t.Name]
		switch {
		case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			res, err := adm.CreateTopic(ctx, t.Partitions, 1, nil, t.Name)
			if err == nil {
				err = res.Err
			}
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("create topic %s: %w", t.Name, err)
			}
		case d.Err != nil:
			return fmt.Errorf("topic %s: %w", t.Name, d.Err)
		case int32(len(d.Partitions)) < t.Partitions:
			res, err := adm.UpdatePartitions(ctx, int(t.Partitions), t.Name)
			if err == nil {
				err = res.Error()
			}
			if err != nil {
				return fmt.Errorf("topic %s: grow to %d partitions: %w", t.Name, t.Partitions, err)
			}
		}
	}
	return nil
}

// rule is an ACL as the broker keeps it (allow, any host).
type rule struct {
	resource kmsg.ACLResourceType
	name     string
	pattern  kmsg.ACLResourcePatternType
	op       kmsg.ACLOperation
}

func toRule(a brokeracl.ACL) (rule, error) {
	var r rule
	r.name = a.Name
	switch a.Resource {
	case brokeracl.Topic:
		r.resource = kmsg.ACLResourceTypeTopic
	case brokeracl.Group:
		r.resource = kmsg.ACLResourceTypeGroup
	default:
		return r, fmt.Errorf("ACL %s: unknown resource type", a)
	}
	switch a.Pattern {
	case brokeracl.Literal:
		r.pattern = kmsg.ACLResourcePatternTypeLiteral
	case brokeracl.Prefixed:
		r.pattern = kmsg.ACLResourcePatternTypePrefixed
	default:
		return r, fmt.Errorf("ACL %s: unknown pattern type", a)
	}
	op, err := kmsg.ParseACLOperation(strings.ToLower(a.Operation))
	if err != nil {
		return r, fmt.Errorf("ACL %s: %w", a, err)
	}
	r.op = op
	return r, nil
}

// applyACLs makes u's ACLs exactly its listed ones.
func applyACLs(ctx context.Context, cl *kgo.Client, u brokeracl.User) error {
	principal := "User:" + u.Name
	var want []rule
	for _, a := range u.ACLs {
		r, err := toRule(a)
		if err != nil {
			return err
		}
		want = append(want, r)
	}

	desc := kmsg.NewPtrDescribeACLsRequest()
	desc.ResourceType = kmsg.ACLResourceTypeAny
	desc.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	desc.Principal = &principal
	desc.Operation = kmsg.ACLOperationAny
	desc.PermissionType = kmsg.ACLPermissionTypeAny
	resp, err := desc.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("describe ACLs: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return fmt.Errorf("describe ACLs: %w", err)
	}
	var have []rule
	del := kmsg.NewPtrDeleteACLsRequest()
	for _, res := range resp.Resources {
		for _, a := range res.ACLs {
			r := rule{res.ResourceType, res.ResourceName, res.ResourcePatternType, a.Operation}
			if a.PermissionType == kmsg.ACLPermissionTypeAllow && a.Host == "*" && slices.Contains(want, r) {
				have = append(have, r)
				continue
			}
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourceName, f.ResourcePatternType = res.ResourceType, &res.ResourceName, res.ResourcePatternType
			f.Principal, f.Host, f.Operation, f.PermissionType = &principal, &a.Host, a.Operation, a.PermissionType
			del.Filters = append(del.Filters, f)
		}
	}
	if len(del.Filters) > 0 {
		resp, err := del.RequestWith(ctx, cl)
		if err != nil {
			return fmt.Errorf("delete stale ACLs: %w", err)
		}
		for _, r := range resp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				return fmt.Errorf("delete stale ACLs: %w", err)
			}
		}
	}
	create := kmsg.NewPtrCreateACLsRequest()
	for _, r := range want {
		if slices.Contains(have, r) {
			continue
		}
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = r.resource, r.name, r.pattern
		c.Principal, c.Host, c.Operation, c.PermissionType = principal, "*", r.op, kmsg.ACLPermissionTypeAllow
		create.Creations = append(create.Creations, c)
	}
	if len(create.Creations) == 0 {
		return nil
	}
	cresp, err := create.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create ACLs: %w", err)
	}
	for i, r := range cresp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("create ACL %v: %w", create.Creations[i], err)
		}
	}
	return nil
}
