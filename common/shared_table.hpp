#pragma once
// The layout of the shared-memory segment that the master, the health checker and every
// worker map. Types only: no Boost, no allocation, no pointers (each process maps the segment
// at its own address), only lock-free atomics.
//
// Layout: each configured target owns a group of kAddressesPerTarget slots, one per address
// its name resolves to (`docker compose --scale` gives one name several addresses); the
// group's `address_count` says how many leading slots are in use.
//
// Writers of each field ("before the fork": the master, in make_generation, while no child
// of this generation exists yet; the children only read those values or take over from them):
//   header: generation,
//   target_count, workers,
//   reloads                 master, before the fork
//   group.ledger_group      master, before the fork
//   group.address_count     master before the fork; then the checker thread of that target
//   group.draining          master before the fork (carried over); then the admin listener's
//                           threads (checker process), plain stores of 0 or 1
//   slot.address            master before the fork; then the checker thread of that target,
//                           under the sequence counter address_seq (see store_address)
//   slot.up_since_ms,
//   last_status, check_us   master before the fork; then the checker of that target (check_us
//                           by the probe thread of that address)
//   slot.reason             master before the fork; the checker of that target; a worker whose
//                           connect failed (before it stores up = 0: who sees DOWN sees why)
//   slot.up                 master before the fork; the checker writes its verdict (1 or 0); a
//                           worker that cannot connect writes 0 (passive health). Either order
//                           is right: a worker's 0 landing after the checker's 1 keeps the
//                           target out until the next check; a checker's 1 landing after a
//                           worker's 0 happens only if its probe passed after the failure
//                           began, and its next round sees passive_failures grown and counts it.
//   slot.passive_failures   master before the fork (copied); then every worker, fetch_add only
//   slot.connections,
//   bytes_*; connections,
//   rejected_*              master before the fork (copied); every worker, fetch_add only; and
//                           the master, fetch_add only, when a replaced generation's last
//                           process exits: what it counted while draining
//   round_robin             every worker, fetch_add only (a counter that only grows)
//   worker_active[w]        worker w's connection threads, fetch_add/fetch_sub; the worker that
//                           replaces w takes it with exchange(0) before it serves; the master
//                           only reads it, once the generation's last process has exited
//   LoadLedger active       every worker of every generation, fetch_add/fetch_sub; the worker
//                           that replaces a dead one, and the master when a generation ends,
//                           fetch_sub what the dead processes' worker_active shares say
//   checker_heartbeat_ms    the master (the start value, before the fork), then the health
//                           checker's main thread, every kHeartbeatPeriodMs
//   checker_stale_after_ms  master, before the fork
//   checker_ready           the checker's main thread: 1 once every target's first round is
//                           done (or it took over a known state)
//   worker_accepting[w]     worker w only: 1 once its acceptor pool runs
// The master reads checker_ready and worker_accepting to decide that a new generation serves
// before it retires the old one (docs/ARCHITECTURE.md, "Reload").
// Readers take no lock. The address is several words, so it is published with a sequence
// counter (a seqlock whose readers give up after a bounded number of tries instead of
// spinning if the writer died mid-update; the next write, by the respawned checker, makes
// it readable again).
//
// Open connections (`active`) are not in this table but in the LoadLedger, a second mapping
// that lives as long as the master: every generation's table is fresh, but a target's
// max_connections must count the connections a draining generation still holds. Each
// target's group.ledger_group says which ledger group holds its addresses' counts.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "common/limits.hpp"
#include "common/net.hpp"

namespace sluice {

inline constexpr size_t kCacheLine = 64;

// Why a target is DOWN. Stored as a number in the slot; text from down_reason_name(), which
// is what the logs, the /metrics `reason` label and /status show. New reasons go at the end:
// the numbers of the others stay as they were.
enum class DownReason : uint32_t {
    none = 0,
    refused,
    connect_timeout,  // no connection within the time-out (HAProxy's L4TOUT)
    bad_status,
    malformed,
    unresolved,
    unreachable,
    reset,
    error,
    pending,           // a new address, not checked yet
    response_timeout,  // connected, but no full status line in time (HAProxy's L7TOUT)
};
const char* down_reason_name(DownReason reason);

// What a failed connect or exchange with a target says about it, from its errno: one table
// for the health checker and the workers, so both give a failure the same reason.
// `blames_target` is false for what is this process's own trouble (out of descriptors,
// memory or local ports; the local network down): a worker must not mark targets DOWN for
// a local shortage, which would turn it into an outage. ETIMEDOUT is `connect_timeout`; a
// caller that timed out later, waiting for a reply, says `response_timeout` itself.
struct ErrnoClass {
    int err;
    DownReason reason;
    bool blames_target;
};
// Any errno not in errno_classes(): {err, DownReason::error, false}.
ErrnoClass classify_errno(int err);
// The table itself (for tests and docs).
std::span<const ErrnoClass> errno_classes();

// CLOCK_MONOTONIC in milliseconds: the one clock of `up_since_ms`, which the checker writes
// and every worker reads (steady_clock is CLOCK_MONOTONIC on Linux, shared by all processes).
inline int64_t monotonic_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct alignas(kCacheLine) TargetSlot {
    static constexpr size_t kAddressWords = 5;  // 32 bytes of sockaddr + its length

    std::atomic<uint32_t> up{0};
    std::atomic<uint32_t> reason{0};            // a DownReason
    std::atomic<uint32_t> last_status{0};       // HTTP status of the last check, 0 if none
    std::atomic<uint32_t> check_us{0};          // how long the last check took, in microseconds
    std::atomic<int64_t> up_since_ms{0};        // CLOCK_MONOTONIC ms of the last DOWN -> UP flip
    std::atomic<uint64_t> passive_failures{0};  // connects that failed on a worker

    // Traffic counters, written by the worker that owns the connection (fetch_add). Each is
    // listed once in kTargetStats (common/table_counters.hpp), which every reader walks; all
    // are 64-bit so that one pointer-to-member type names any of them. The connections open
    // now are in the LoadLedger, not here.
    std::atomic<uint64_t> connections{0};  // connections made to it, in all
    std::atomic<uint64_t> bytes_to_target{0};
    std::atomic<uint64_t> bytes_to_client{0};
    std::atomic<uint64_t> address_seq{0};  // odd while the address is being rewritten
    std::atomic<uint64_t> address_words[kAddressWords]{};

    // Publishes a new address (single writer). Also right after a writer that was killed in
    // the middle of this call: the count it left odd is made even again by this write.
    void store_address(const net::Endpoint& ep);
    // Copies the address out. False if no address is set or no stable copy was seen.
    bool load_address(net::Endpoint& out) const;
};

struct alignas(kCacheLine) TargetGroup {
    std::atomic<uint32_t> address_count{0};
    std::atomic<uint32_t> draining{0};      // 1: no new connections (admin POST .../drain)
    std::atomic<uint32_t> ledger_group{0};  // its group in the LoadLedger (below kLedgerGroups)
};

struct SharedTable {
    std::atomic<uint64_t> generation{0};
    std::atomic<uint32_t> target_count{0};

    std::atomic<uint32_t> workers{0};  // worker processes of this generation
    std::atomic<uint64_t> reloads{0};  // successful reloads since start

    alignas(kCacheLine) std::atomic<uint64_t> round_robin{0};

    // Whole-balancer counters (every worker, fetch_add only).
    alignas(kCacheLine) std::atomic<uint64_t> connections{0};  // accepted
    std::atomic<uint64_t> rejected_no_target{0};
    std::atomic<uint64_t> rejected_limit{0};

    TargetGroup groups[kMaxTargets];
    TargetSlot slots[kMaxSlots];

    // Each worker's share of every slot's open connections in the LoadLedger (written by that
    // worker only, before its connect starts), so that a worker that died with connections
    // open or connecting can be subtracted by its successor, or by the master when the
    // generation ends, instead of leaving the count too high for ever.
    std::atomic<uint32_t> worker_active[kMaxWorkers][kMaxSlots];

    // The checker's heartbeat (CLOCK_MONOTONIC ms), on its own cache line: every connection
    // reads it (checker_silent), the checker writes it a few times a second.
    alignas(kCacheLine) std::atomic<int64_t> checker_heartbeat_ms{0};
    std::atomic<int64_t> checker_stale_after_ms{0};  // 0: never stale (a table in a test)
    // Readiness of this generation's processes, read by the master during a reload.
    std::atomic<uint32_t> checker_ready{0};
    std::atomic<uint32_t> worker_accepting[kMaxWorkers];

    // The slot of address `a` of target `t`.
    static size_t slot_index(size_t t, size_t a) { return t * kAddressesPerTarget + a; }
    TargetSlot& slot(size_t t, size_t a) { return slots[slot_index(t, a)]; }
    const TargetSlot& slot(size_t t, size_t a) const { return slots[slot_index(t, a)]; }
};

// Ledger groups: enough for four generations alive at once that share no target.
inline constexpr size_t kLedgerGroups = 4 * kMaxTargets;

// One target's open connections, one count per address slot, in the ledger.
struct alignas(kCacheLine) LedgerGroup {
    std::atomic<uint64_t> active[kAddressesPerTarget]{};
};

// The open connections of every target of every live generation: mapped once by the master
// before its first fork and never replaced, so a reload's new workers see the connections the
// old ones still hold. A target carried over by a reload keeps its group; a new target gets a
// group that no live generation uses and that counts nothing (master/load_ledger.hpp).
struct LoadLedger {
    LedgerGroup groups[kLedgerGroups];

    // The open connections of slot `index` (SharedTable::slot_index) of `table`'s generation.
    std::atomic<uint64_t>& active(const SharedTable& table, size_t index) {
        return groups[group_of(table, index)].active[index % kAddressesPerTarget];
    }
    const std::atomic<uint64_t>& active(const SharedTable& table, size_t index) const {
        return groups[group_of(table, index)].active[index % kAddressesPerTarget];
    }

private:
    static size_t group_of(const SharedTable& table, size_t index) {
        const uint32_t group =
            table.groups[index / kAddressesPerTarget].ledger_group.load(std::memory_order_relaxed);
        return group < kLedgerGroups ? group : 0;  // the master writes only valid groups
    }
};
// How often the checker writes checker_heartbeat_ms.
inline constexpr int64_t kHeartbeatPeriodMs = 250;

// True while the checker has written no heartbeat for longer than checker_stale_after_ms:
// no checker is running to confirm or clear a DOWN mark, so workers stop trusting them.
inline bool checker_silent(const SharedTable& table, int64_t now_ms) {
    const int64_t bound = table.checker_stale_after_ms.load(std::memory_order_relaxed);
    return bound > 0 && now_ms - table.checker_heartbeat_ms.load(std::memory_order_relaxed) > bound;
}

static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<TargetSlot>);
static_assert(std::is_standard_layout_v<SharedTable>);
static_assert(std::is_standard_layout_v<LoadLedger>);
static_assert(sizeof(sockaddr_in6) <= 8 * (TargetSlot::kAddressWords - 1));

}  // namespace sluice
