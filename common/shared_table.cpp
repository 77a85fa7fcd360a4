#include "common/shared_table.hpp"

#include <cerrno>
#include <cstring>

namespace sluice {

const char* down_reason_name(DownReason reason) {
    switch (reason) {
        case DownReason::none: return "none";
        case DownReason::refused: return "connection refused";
        case DownReason::connect_timeout: return "connect timeout";
        case DownReason::bad_status: return "bad status";
        case DownReason::malformed: return "malformed reply";
        case DownReason::unresolved: return "unresolved";
        case DownReason::unreachable: return "unreachable";
        case DownReason::reset: return "connection reset";
        case DownReason::error: return "error";
        case DownReason::pending: return "not checked yet";
        case DownReason::response_timeout: return "response timeout";
    }
    return "unknown";
}

namespace {
constexpr ErrnoClass kErrnoClasses[] = {
    {ECONNREFUSED, DownReason::refused, true},
    {ETIMEDOUT, DownReason::connect_timeout, true},
    {ENETUNREACH, DownReason::unreachable, true},
    {EHOSTUNREACH, DownReason::unreachable, true},
    {EHOSTDOWN, DownReason::unreachable, true},
    {ENETDOWN, DownReason::unreachable, false},  // our own interface is down
    {ECONNRESET, DownReason::reset, true},
    {EPIPE, DownReason::reset, true},
    // This process's shortages: an error, but not the target's.
    {EMFILE, DownReason::error, false},
    {ENFILE, DownReason::error, false},
    {ENOBUFS, DownReason::error, false},
    {ENOMEM, DownReason::error, false},
    {EADDRNOTAVAIL, DownReason::error, false},
};
}  // namespace

ErrnoClass classify_errno(int err) {
    for (const ErrnoClass& c : kErrnoClasses) {
        if (c.err == err) return c;
    }
    return {err, DownReason::error, false};
}

std::span<const ErrnoClass> errno_classes() { return kErrnoClasses; }

void TargetSlot::store_address(const net::Endpoint& ep) {
    uint64_t words[kAddressWords] = {};
    std::memcpy(words, &ep.storage, std::min<size_t>(ep.length, 8 * (kAddressWords - 1)));
    words[kAddressWords - 1] = ep.length;
    // Odd while writing. A writer killed mid-update (a checker killed by SIGKILL) left the
    // count odd: keep it odd rather than step it to even over half-written words, and end
    // on the next even number, so its successor's address is readable again.
    const uint64_t writing = address_seq.load(std::memory_order_relaxed) | 1;
    address_seq.store(writing, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (size_t i = 0; i < kAddressWords; ++i)
        address_words[i].store(words[i], std::memory_order_relaxed);
    address_seq.store(writing + 1, std::memory_order_release);
}

bool TargetSlot::load_address(net::Endpoint& out) const {
    for (int attempt = 0; attempt < 100; ++attempt) {
        const uint64_t before = address_seq.load(std::memory_order_acquire);
        if (before & 1) continue;
        uint64_t words[kAddressWords];
        for (size_t i = 0; i < kAddressWords; ++i)
            words[i] = address_words[i].load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (address_seq.load(std::memory_order_relaxed) != before) continue;
        const uint64_t length = words[kAddressWords - 1];
        if (length == 0 || length > sizeof out.storage) return false;
        std::memcpy(&out.storage, words, 8 * (kAddressWords - 1));
        out.length = static_cast<socklen_t>(length);
        return true;
    }
    return false;
}

}  // namespace sluice
