package ratestage

import (
	"errors"
	"strings"
	"sync"
)

// ErrStaleLedger means that a counter or an allowance the batch took from
// the stage's memory had another value in the database when the batch
// wrote it back (another process rated the account meanwhile, or the row
// was changed by hand). Nothing the batch did commits; the stage forgets
// the batch's remembered values, and Store.Rate runs the batch again,
// which then reads them under lock.
var ErrStaleLedger = errors.New("a remembered counter or allowance changed in the database")

// maxRemembered bounds how many counters (and, separately, allowances) a
// stage remembers: about 150 bytes each, so at most about 30 MiB for
// both. When a batch would pass it, the stage forgets them all and
// starts again from the database.
const maxRemembered = 100_000

// ledgerMemory is what the stage remembers of the counters and allowances
// its committed batches left behind, so that a batch over the same
// accounts need not read and lock them first. It is only ever a guess:
// the batch writes each remembered value back with the value it assumed,
// and the database refuses the write when the row holds another
// (ErrStaleLedger), in the same transaction as the MURs. The database
// stays the only truth, and a batch commits only if every counter and
// allowance it rated with was exactly what the database held, under the
// row lock its write takes. Exactly-once is the same as without it.
type ledgerMemory struct {
	mu         sync.Mutex
	counters   map[CounterKey]string
	allowances map[AllowanceKey]string
}

// recall splits keys into the remembered ones (with their values, added
// to into) and the others, returned in order.
func recall[K comparable](mu *sync.Mutex, m *map[K]string, keys []K, into map[K]string) []K {
	mu.Lock()
	defer mu.Unlock()
	var rest []K
	for _, k := range keys {
		if v, ok := (*m)[k]; ok {
			into[k] = v
		} else {
			rest = append(rest, k)
		}
	}
	return rest
}

// remember stores committed values, forgetting everything first when the
// map would grow past maxRemembered. A key it has not seen is stored as a
// copy (own), so that it does not keep alive the whole message its
// strings were read from.
func remember[K comparable](mu *sync.Mutex, m *map[K]string, own func(K) K, values ...map[K]string) {
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, v := range values {
		n += len(v)
	}
	if *m == nil || len(*m)+n > maxRemembered {
		*m = make(map[K]string, n)
	}
	for _, v := range values {
		for k, x := range v {
			if _, ok := (*m)[k]; !ok {
				k = own(k)
			}
			(*m)[k] = x
		}
	}
}

func (k CounterKey) own() CounterKey {
	k.Client, k.AccountID, k.UsageType = strings.Clone(k.Client), strings.Clone(k.AccountID), strings.Clone(k.UsageType)
	return k
}

func (k AllowanceKey) own() AllowanceKey {
	k.Client, k.AccountID, k.DiscountID = strings.Clone(k.Client), strings.Clone(k.AccountID), strings.Clone(k.DiscountID)
	return k
}

// forget drops keys, so that the next batch reads them under lock.
func forget[K comparable](mu *sync.Mutex, m *map[K]string, keys map[K]string) {
	mu.Lock()
	defer mu.Unlock()
	for k := range keys {
		delete(*m, k)
	}
}

func (l *ledgerMemory) recallCounters(keys []CounterKey, into map[CounterKey]string) []CounterKey {
	return recall(&l.mu, &l.counters, keys, into)
}

func (l *ledgerMemory) recallAllowances(keys []AllowanceKey, into map[AllowanceKey]string) []AllowanceKey {
	return recall(&l.mu, &l.allowances, keys, into)
}

func (l *ledgerMemory) remember(c map[CounterKey]string, a map[AllowanceKey]string) {
	remember(&l.mu, &l.counters, CounterKey.own, c)
	remember(&l.mu, &l.allowances, AllowanceKey.own, a)
}

func (l *ledgerMemory) forget(c map[CounterKey]string, a map[AllowanceKey]string) {
	forget(&l.mu, &l.counters, c)
	forget(&l.mu, &l.allowances, a)
}
