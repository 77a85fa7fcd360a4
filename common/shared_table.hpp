#pragma once
// The layout of the shared-memory segment that the master, the health checker and every
// worker map. Types only: no Boost, no allocation, no pointers (each process maps the segment
// at its own address), only lock-free atomics.
//
// Layout: each configured target owns a group of kAddressesPerTarget slots, one per address
// its name resolves to (`docker compose --scale` gives one name several addresses); the
// group's `address_count` says how many leading slots are in use.
//
// Writers, one per field, except where noted:
//   header                  master, before any fork
//   round_robin             every worker, fetch_add only (a counter that only grows)
//   group.address_count,
//   group.draining          the admin listener (in the checker process)
//   slot.up_since_ms,
//   slot.address, reason,
//   last_status, check_us   the health checker (one checker thread per target)
//   slot.passive_failures,
//   active, connections,
//   bytes_*; the global
//   connection counters     every worker, fetch_add (active: fetch_add/fetch_sub); and the
//                           master, fetch_add only, when a replaced generation's last
//                           process exits: what it counted while draining (neither `active`
//                           nor passive_failures, whose growth the checker reads as news)
//   worker_active[w]        worker w only; its successor zeroes it and takes it off `active`
//   checker_heartbeat_ms    the master (the start value, before the fork), then the health
//                           checker's main thread, every kHeartbeatPeriodMs
//   checker_stale_after_ms  master, before the fork
//   checker_ready           the checker's main thread: 1 once every target's first round is
//                           done (or it took over a known state)
//   worker_accepting[w]     worker w only: 1 once its acceptor pool runs
// The master reads checker_ready and worker_accepting to decide that a new generation serves
// before it retires the old one (docs/ARCHITECTURE.md, "Reload").
//   slot.up                 the checker writes its verdict (1 or 0); a worker that cannot
//                           connect writes 0 (passive health). Either order is right: a
//                           worker's 0 landing after the checker's 1 keeps the target out
//                           until the next check; a checker's 1 landing after a worker's 0
//                           happens only if its probe passed after the failure began, and
//                           its next round sees passive_failures grown and counts it.
// Readers take no lock. The address is several words, so it is published with a sequence
// counter (a seqlock whose readers give up after a bounded number of tries instead of
// spinning if the writer died mid-update: the slot is then skipped until the respawned
// checker rewrites it).

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

    // Traffic counters, written by the worker that owns the connection (fetch_add/sub). Each
    // is listed once in kTargetStats (common/table_counters.hpp), which every reader walks;
    // all are 64-bit so that one pointer-to-member type names any of them.
    std::atomic<uint64_t> active{0};       // connections open now
    std::atomic<uint64_t> connections{0};  // connections made to it, in all
    std::atomic<uint64_t> bytes_to_target{0};
    std::atomic<uint64_t> bytes_to_client{0};
    std::atomic<uint64_t> address_seq{0};  // odd while the address is being rewritten
    std::atomic<uint64_t> address_words[kAddressWords]{};

    // Publishes a new address (single writer).
    void store_address(const net::Endpoint& ep);
    // Copies the address out. False if no address is set or no stable copy was seen.
    bool load_address(net::Endpoint& out) const;
};

struct alignas(kCacheLine) TargetGroup {
    std::atomic<uint32_t> address_count{0};
    std::atomic<uint32_t> draining{0};  // 1: no new connections (admin POST .../drain)
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

    // Each worker's share of every slot's `active` (written by that worker only), so that a
    // worker that died with connections open can be subtracted from `active` by its
    // successor instead of leaving the gauge too high forever.
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
static_assert(sizeof(sockaddr_in6) <= 8 * (TargetSlot::kAddressWords - 1));

}  // namespace sluice
