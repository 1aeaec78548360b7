package kernel

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/goplt/goplt/internal/contracts"
	"github.com/goplt/goplt/internal/outbox"
)

// UseContracts makes the kernel hold events to the module's contracts (its generated
// contract.Events()): a payload published on an undeclared topic or not matching its schema
// is refused before it enters the outbox, and a delivered payload of a version the
// subscription does not read, or not matching that version's schema, is dropped to the
// dead-letter topic with the reason. Call it in Init.
func (k *Kernel) UseContracts(s contracts.Set) {
	c, err := s.Checker()
	if err != nil {
		k.initErrs = append(k.initErrs, "event contracts: "+err.Error())
		return
	}
	k.contracts = c
}

// checkOutgoing validates a payload (JSON) the module is about to publish on topic.
func (k *Kernel) checkOutgoing(topic string, payload []byte) error {
	if k.contracts == nil {
		return nil
	}
	return k.contracts.Outgoing(topic, payload)
}

// checkIncoming validates a delivered payload (decoded by eventsig.Decode) for subscription s.
func (k *Kernel) checkIncoming(s Subscription, decoded any) error {
	if k.contracts == nil || s.DeadLetters {
		return nil
	}
	if err := k.contracts.IncomingValue(s.Topic, decoded); err != nil {
		return fmt.Errorf("%w: %w: %w", ErrDrop, errRejected, err)
	}
	return nil
}

// Emit adds an event to the outbox within tx (see outbox.Add), after checking the payload
// against the module's contract: a payload that breaks it is refused (contracts.ErrContract)
// and nothing is written. Use it inside Transact.
func (k *Kernel) Emit(ctx context.Context, tx pgx.Tx, topic string, payload any) (string, error) {
	b, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("emit %s: encode: %w", topic, err)
	}
	if err := k.checkOutgoing(topic, b); err != nil {
		return "", err
	}
	ctx, span := k.tracer.Start(ctx, "outbox "+topic, trace.WithAttributes(attribute.String("messaging.destination.name", topic)))
	defer span.End()
	return outbox.Add(ctx, tx, topic, payload)
}
