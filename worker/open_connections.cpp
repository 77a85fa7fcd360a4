#include "worker/open_connections.hpp"

#include <sys/socket.h>

#include <thread>
#include <utility>

#include "common/net.hpp"
#include "worker/kernel_relay.hpp"

namespace sluice::worker {

const char* cut_end_name(StopReason reason) {
    return reason == StopReason::reload ? "drain_timeout" : "shutdown_timeout";
}

void reset_connection(int fd) {
    // First: whatever happens below, the owner's close() sends a RST.
    net::reset_on_close(fd);  // its result is not needed: the connect below runs either way
    // connect() to AF_UNSPEC disconnects a TCP socket: Linux sends a RST if the connection
    // is (half) open, sets ECONNRESET on the socket and wakes whoever waits on it. Unlike
    // shutdown(), which would send a FIN first and so let the peer read a clean end.
    sockaddr unspecified{};
    unspecified.sa_family = AF_UNSPEC;
    if (::connect(fd, &unspecified, sizeof unspecified) != 0)
        ::shutdown(fd, SHUT_RDWR);  // not disconnected: at least wake the owner
}

void OpenConnections::Entry::open(int client) {
    target_.store(-1);
    reason_.store(0);
    client_.store(client);
    state_.store(kOpen);
    // Sequentially consistent with cut_all(): either it sees this entry open, or this sees
    // that it began (or both, and cut() lets one of them win).
    const int cutting = owner_->cutting_.load();
    if (cutting != 0) cut(static_cast<StopReason>(cutting));
}

void OpenConnections::Entry::set_target(int target) {
    target_.store(target);
    // Cut before the target was known (or while it was being stored): the cutter may not
    // have seen it, so reset it here. A second reset of a socket is harmless.
    if (state_.load() != kOpen) reset_connection(target);
}

StopReason OpenConnections::Entry::close() {
    for (;;) {
        uint32_t state = state_.load();
        switch (state) {
            case kIdle: return StopReason::none;
            case kOpen:
                if (state_.compare_exchange_strong(state, kIdle)) return StopReason::none;
                break;                                        // a cut began meanwhile
            case kCutting: std::this_thread::yield(); break;  // the cutter still uses our fds
            case kCut: state_.store(kIdle); return static_cast<StopReason>(reason_.load());
            default: return StopReason::none;
        }
    }
}

bool OpenConnections::Entry::was_cut(WrittenAtCut& written) const {
    uint32_t state = state_.load();
    while (state == kCutting) {
        std::this_thread::yield();
        state = state_.load();
    }
    if (state != kCut) return false;
    written = {cut_client_written_, cut_target_written_};
    return true;
}

bool OpenConnections::Entry::cut(StopReason why) {
    uint32_t open = kOpen;
    if (!state_.compare_exchange_strong(open, kCutting)) return false;
    // The owner cannot close its sockets until the state leaves kCutting: these numbers
    // still name this connection's sockets.
    reason_.store(static_cast<int>(why));
    const int client = client_.load();
    const int target = target_.load();
    cut_client_written_ = bytes_written(client);
    cut_target_written_ = target >= 0 ? bytes_written(target) : 0;
    reset_connection(client);
    if (target >= 0) reset_connection(target);
    state_.store(kCut);
    return true;
}

OpenConnections::~OpenConnections() {
    Entry* e = head_.load();
    while (e != nullptr) delete std::exchange(e, e->next_);
}

OpenConnections::Entry& OpenConnections::claim() {
    if (released_.load() > 0) {
        for (Entry* e = head_.load(); e != nullptr; e = e->next_) {
            bool owned = false;
            if (e->owned_.compare_exchange_strong(owned, true)) {
                released_.fetch_sub(1);
                return *e;
            }
        }
    }
    auto* entry = new Entry();  // once per thread at the peak; freed with the registry
    entry->owner_ = this;
    Entry* head = head_.load();
    do entry->next_ = head;
    while (!head_.compare_exchange_weak(head, entry));
    return *entry;
}

void OpenConnections::release(Entry& entry) {
    entry.close();
    entry.owned_.store(false);
    released_.fetch_add(1);
}

size_t OpenConnections::cut_all(StopReason why) {
    cutting_.store(static_cast<int>(why));
    size_t cut = 0;
    for (Entry* e = head_.load(); e != nullptr; e = e->next_) cut += e->cut(why) ? 1 : 0;
    return cut;
}

}  // namespace sluice::worker
