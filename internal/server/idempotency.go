package server

import (
	"errors"
	"fmt"
	"time"

	"github.com/outgate/outgate/internal/config"
	"github.com/outgate/outgate/internal/idempotency"
	"github.com/outgate/outgate/internal/idempotency/bolt"
)

// idemSweepEvery is how often expired idempotency records are deleted.
const idemSweepEvery = time.Minute

// openIdempotency opens the store a config asks for, or returns nil when no
// upstream uses idempotency.
func openIdempotency(cfg *config.Config) (idempotency.Store, error) {
	if !cfg.UsesIdempotency() {
		return nil, nil
	}
	s := cfg.IdempotencyStore
	if s.DynamoDBTable != "" {
		return nil, errors.New("idempotency_store.dynamodb_table: outgate serve does not support the DynamoDB store yet; use path (the embedded store)")
	}
	st, err := bolt.Open(s.Path, bolt.Options{MaxKeysPerClient: s.MaxKeys, SweepEvery: idemSweepEvery})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// idempotencyFor returns the store for a reloaded config: the open one, a
// newly opened one if the running config had none, or an error if the
// store's settings changed (that needs a restart: records in flight live in
// the open store).
func (g *gateway) idempotencyFor(cfg *config.Config) (idempotency.Store, error) {
	if !cfg.UsesIdempotency() {
		return g.idem, nil
	}
	if g.idem == nil {
		st, err := openIdempotency(cfg)
		if err != nil {
			return nil, err
		}
		g.idem, g.idemConf = st, cfg.IdempotencyStore
		return st, nil
	}
	n, o := cfg.IdempotencyStore, g.idemConf
	if n.Path != o.Path || n.DynamoDBTable != o.DynamoDBTable || n.MaxKeys != o.MaxKeys {
		return nil, fmt.Errorf("idempotency_store cannot change on reload; restart outgate for that")
	}
	return g.idem, nil
}
