#pragma once
// The connections a worker process has open, so that at its deadline (drain_timeout after a
// reload, shutdown_timeout at a stop) it can cut every one with a reset on both sides: a
// connection cut at the deadline must look cut to its client and its target, and be logged
// with why it ended, not vanish as if it had completed.
//
// One Entry per pool thread (a thread serves one connection at a time), claimed when the
// thread starts and left for the next thread when it exits; entries are freed only with the
// registry, so it only grows to the peak number of threads. Lock-free and process-local: a
// connection costs its thread a few atomic stores and one compare-and-swap; nothing here is
// in the shared segment.

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace sluice::worker {

// Why a worker stops serving. The master sends it as the value of its SIGTERM and SIGQUIT
// (sigqueue()); a signal without a value (an operator's kill, the death of the master)
// means a shutdown.
enum class StopReason : int {
    none = 0,
    reload = 1,    // a newer generation serves: drain for drain_timeout
    shutdown = 2,  // sluice stops: drain for shutdown_timeout
};

// The `end=` of a connection cut at the deadline of `reason`: "drain_timeout" or
// "shutdown_timeout".
const char* cut_end_name(StopReason reason);

// Resets a connected TCP socket that another thread may be using: the peer gets a RST (no
// FIN before it, so it cannot mistake the cut for a complete exchange) and the thread's
// next poll(), recv() or send() on it fails at once. The caller must own `fd` until this
// returns.
void reset_connection(int fd);

// What a cut connection's sockets had been given to send when the cut came (bytes written:
// acknowledged plus queued), read by the cutter just before it resets them: a reset zeroes a
// socket's counters, and the kernel relay has no other count of the bytes it moved.
struct WrittenAtCut {
    uint64_t client = 0;
    uint64_t target = 0;
};

class OpenConnections {
public:
    class Entry {
    public:
        // A connection was accepted on `client`. If the registry is already cutting, the
        // connection is cut at once.
        void open(int client);
        // The connection's target socket, once connected; cut at once if the connection
        // was cut before it had one.
        void set_target(int target);
        // The connection is over, its sockets still open: forgets them and says whether it
        // was cut (the stop reason) or not (none). If a cut of this entry is under way, waits
        // for it, so the caller may close the sockets as soon as this returns. Idempotent.
        StopReason close();
        // Whether the connection was cut, without forgetting it as close() does (waits for a
        // cut under way to finish), and then what its sockets had been written.
        bool was_cut(WrittenAtCut& written) const;

    private:
        friend class OpenConnections;
        enum State : uint32_t { kIdle, kOpen, kCutting, kCut };
        bool cut(StopReason why);

        OpenConnections* owner_ = nullptr;
        std::atomic<uint32_t> state_{kIdle};
        std::atomic<int> client_{-1};
        std::atomic<int> target_{-1};
        std::atomic<int> reason_{0};
        std::atomic<bool> owned_{true};
        // Written by the cutter while kCutting, read by the owner after it saw kCut.
        uint64_t cut_client_written_ = 0;
        uint64_t cut_target_written_ = 0;
        Entry* next_ = nullptr;  // set before the entry is published, never changed
    };

    OpenConnections() = default;
    // Frees the entries: only once no thread holds one (a worker never destroys its
    // registry: nothing waits for its threads to end; a test does, after they are done).
    ~OpenConnections();
    OpenConnections(const OpenConnections&) = delete;
    OpenConnections& operator=(const OpenConnections&) = delete;

    // An entry for a thread that is starting: a released one if there is one, else a new one
    // (allocated once, freed with the registry).
    Entry& claim();
    // The thread owning `entry` exits; its connection, if any, was closed.
    void release(Entry& entry);

    // Cuts every connection open now or opened from now on, with `why` as its reason.
    // Returns how many were open. Threads are not waited for: each learns it was cut from
    // Entry::close() and logs it.
    size_t cut_all(StopReason why);

private:
    std::atomic<Entry*> head_{nullptr};
    std::atomic<size_t> released_{0};
    std::atomic<int> cutting_{0};  // a StopReason once cut_all() has begun
};

}  // namespace sluice::worker
