#pragma once
// The layout of the shared-memory segment that the master, the health checker and every
// worker map. Types only: no Boost, no allocation, no pointers (each process maps the segment
// at its own address), only lock-free atomics.
//
// Writers, one per field:
//   header                  master, before any fork
//   round_robin             every worker, fetch_add only (a counter that only grows)
//   slot.up / reason /
//   last_status / address   the health checker (one checker thread per slot)
// Readers take no lock. The address is several words, so it is published with a sequence
// counter (a seqlock whose readers give up after a bounded number of tries instead of
// spinning if the writer died mid-update: the slot is then skipped until the respawned
// checker rewrites it).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common/net.hpp"

namespace sluice {

inline constexpr uint32_t kTableMagic = 0x736c6963;  // "slic"
inline constexpr uint32_t kTableLayoutVersion = 1;
inline constexpr size_t kMaxTargets = 256;
inline constexpr size_t kCacheLine = 64;

// Why a target is DOWN. Stored as a number in the slot; text from down_reason_name().
enum class DownReason : uint32_t {
    none = 0,
    refused,
    timeout,
    bad_status,
    malformed,
    unresolved,
    unreachable,
    reset,
    error,
};
const char* down_reason_name(DownReason reason);

struct alignas(kCacheLine) TargetSlot {
    static constexpr size_t kAddressWords = 5;  // 32 bytes of sockaddr + its length

    std::atomic<uint32_t> up{0};
    std::atomic<uint32_t> reason{0};       // a DownReason
    std::atomic<uint32_t> last_status{0};  // HTTP status of the last check, 0 if none
    std::atomic<uint64_t> address_seq{0};  // odd while the address is being rewritten
    std::atomic<uint64_t> address_words[kAddressWords]{};

    // Publishes a new address (single writer).
    void store_address(const net::Endpoint& ep);
    // Copies the address out. False if no address is set or no stable copy was seen.
    bool load_address(net::Endpoint& out) const;
};

struct SharedTable {
    std::atomic<uint32_t> magic{kTableMagic};
    std::atomic<uint32_t> layout_version{kTableLayoutVersion};
    std::atomic<uint64_t> generation{0};
    std::atomic<uint32_t> target_count{0};

    alignas(kCacheLine) std::atomic<uint64_t> round_robin{0};

    alignas(kCacheLine) TargetSlot targets[kMaxTargets];
};

static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::is_standard_layout_v<TargetSlot>);
static_assert(std::is_standard_layout_v<SharedTable>);
static_assert(sizeof(sockaddr_in6) <= 8 * (TargetSlot::kAddressWords - 1));

}  // namespace sluice
