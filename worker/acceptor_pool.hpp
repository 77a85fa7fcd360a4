#pragma once
// The threads of one worker process. Each idle thread blocks in accept() on the shared
// listening socket itself and then serves the connection it accepted (leader/follower: no
// hand-off, so no extra wake-up per connection). When the last idle thread takes a
// connection it starts another, up to a cap; a thread that finds enough idle peers after a
// connection retires, so the pool shrinks after a peak.
//
// Stopping: accept() is woken by a signal (SIGUSR1, handled without SA_RESTART). A flag set
// before the signal could be missed by a thread about to enter accept(), so the stopper keeps
// signalling until no thread is left in the accept path.
//
// Cutting: each thread registers the connection it serves in `open_` (OpenConnections), so
// that at a drain's deadline the worker can reset every connection still open.
//
// Memory: each thread runs in one mapping of the pool's own, which holds its stack, glibc's
// thread descriptor and its ThreadBuffers, laid out so that a thread holding an idle
// connection has two pages of it resident (acceptor_pool.cpp). A retired thread's mapping is
// taken back once the thread is joined.

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "worker/connection.hpp"
#include "worker/open_connections.hpp"

namespace sluice::worker {

struct PoolLimits {
    size_t max_threads = 1024;  // connections served at once by this process
    size_t initial_threads = 4;
    size_t max_idle = 16;            // idle threads kept after a peak (and as many spare mappings)
    size_t stack_size = 256 * 1024;  // for frames, beyond what glibc keeps at the stack's top
};

class AcceptorPool {
public:
    // Serves one accepted client. `connection` is the thread's entry in the registry of
    // open connections, already open() on `client`.
    using Handler = std::function<void(int client, const net::Endpoint& peer,
                                       ThreadBuffers& buffers, OpenConnections::Entry& connection)>;

    AcceptorPool(int listen_fd, PoolLimits limits, Handler handler);
    AcceptorPool(const AcceptorPool&) = delete;
    AcceptorPool& operator=(const AcceptorPool&) = delete;

    // Installs the wake-up signal handler (once per process) and starts the initial threads;
    // returns how many started. With none, nobody accepts: new threads are started only by
    // an accepting one.
    size_t start();

    // Returns once no thread is in accept() any more and none will enter it again.
    // Connections being served go on.
    void stop_accepting();

    // Connections being served right now (a cut one until its thread has logged it).
    size_t active() const { return active_.load(); }

    // The process is about to exit and starts no thread again: detaches the retired threads
    // not yet joined and makes threads that retire from now on detach themselves, so that
    // none is left unjoined (ThreadSanitizer reports that as a leak). Their memory goes with
    // the process.
    void detach_retired();

    // Resets both sides of every connection being served, and of any accepted from now on;
    // each thread then logs its connection as cut for `why`. Returns how many were open.
    size_t cut_open_connections(StopReason why) { return open_.cut_all(why); }

private:
    class ThreadMemory;  // one thread's mapping: guard page, stack, descriptor, buffers

    static void* thread_main(void* memory);
    void run_thread(ThreadMemory& memory);
    bool spawn();
    void accept_failed(int error);
    // Joins the retired threads that have exited and keeps or unmaps their mappings.
    // Caller holds registry_mutex_.
    void reap_retired();

    const int listen_fd_;
    const PoolLimits limits_;
    const size_t stack_bytes_;  // given to each thread (ThreadMemory)
    const Handler handler_;

    std::atomic<bool> stopping_{false};
    std::atomic<size_t> threads_{0};    // live pool threads
    std::atomic<size_t> idle_{0};       // threads between connections
    std::atomic<size_t> accepting_{0};  // threads in the accept path (checked by the stopper)
    std::atomic<size_t> active_{0};
    std::atomic<int64_t> last_accept_error_log_{0};

    OpenConnections open_;

    std::mutex registry_mutex_;  // process-local; taken per thread start/exit, never per read
    std::set<pthread_t> registry_;
    // Under registry_mutex_: threads that retired (joinable, maybe still exiting) with their
    // mappings, and mappings of joined threads kept for the next start (at most max_idle).
    std::vector<std::pair<pthread_t, ThreadMemory*>> retired_;
    std::vector<std::unique_ptr<ThreadMemory>> spare_;
    bool detach_on_retire_ = false;  // under registry_mutex_; set by detach_retired()
};

}  // namespace sluice::worker
