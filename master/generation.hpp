#pragma once
// A generation: one config with the shared segment made for it. Start-up makes generation
// 1; each valid reload makes the next one, carrying over what the checker learnt about the
// targets that are still configured, and their counters.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/shared_segment.hpp"
#include "conf/config.hpp"
#include "master/counter_carry.hpp"
#include "master/load_ledger.hpp"

namespace sluice {

struct Generation {
    uint64_t number = 0;
    Config config;
    unsigned workers = 1;
    SharedSegment segment;
    // Set when the next generation is made from this one: the counters it copied, from which
    // what this generation's draining processes add later is counted (carry_over_drained).
    std::unique_ptr<CounterMark> handed_over;
    // The load ledger every generation shares (made with generation 1, before any fork), and
    // the ledger group of each of this generation's targets, held until it is destroyed:
    // once its last process has exited.
    std::shared_ptr<LedgerBook> ledger;
    std::vector<uint32_t> ledger_groups;

    Generation() = default;
    Generation(const Generation&) = delete;
    Generation& operator=(const Generation&) = delete;
    ~Generation();
};

// Builds a generation for `config`. Targets also in `previous` (same address, host compared
// without case) keep their health, reason, resolved address and counters: a target known
// DOWN stays DOWN until a check says otherwise. Other targets: at start-up (no `previous`)
// healthy once their name resolves (resolved here, before any process runs), DOWN with the
// reason `unresolved` otherwise; on a reload they get no address here (no resolver call in
// the master while it supervises): the new checker resolves and checks them in its first
// round, before the generation is switched to. Sets `previous->handed_over`, the checker's
// silence bound and a first heartbeat. `number`: the new generation's number; 0 for the one
// after `previous` (1 without). A failed reload uses up its number, so the master passes its own.
// A carried-over target keeps its ledger group (the old generation's open connections count
// against its cap); a new one takes a free group. Throws std::runtime_error, with nothing
// changed, when no group is free (too many distinct targets across the live generations).
std::unique_ptr<Generation> make_generation(Config config, unsigned workers, Generation* previous,
                                            uint64_t number = 0);

// The least time without a checker heartbeat that counts as "no checker runs".
inline constexpr int64_t kMinCheckerSilenceMs = 3000;
// How long the checker may be silent before workers stop trusting DOWN marks: two of the
// longest check periods (interval + timeout), at least kMinCheckerSilenceMs. A checker that
// is respawned after a crash is back well within that; one that stays away longer leaves
// DOWN marks that nobody would ever clear.
int64_t checker_stale_after_ms(const Config& config);

// Once the last process of `finished` (a generation that handed over) has exited: adds what
// it counted after the hand-over to `current`, whichever generation serves by then, so each
// count lands once even when reloads are chained. Gauges are not added; the connections its
// dead workers left counted in the ledger are given back (give_back_shares).
void carry_over_drained(const Generation& finished, Generation& current);

// What changed between two generations, for the reload log line:
// "targets +a:1 -b:2, workers 2 -> 3" or "no change".
std::string describe_changes(const Generation& before, const Generation& after);

}  // namespace sluice
