#include "worker/acceptor_pool.hpp"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

#include "common/check.hpp"
#include "common/log.hpp"

namespace sluice::worker {
namespace {

constexpr int kWakeSignal = SIGUSR1;

void on_wake_signal(int) {}  // only interrupts a blocking call

}  // namespace

AcceptorPool::AcceptorPool(int listen_fd, PoolLimits limits, Handler handler)
    : listen_fd_(listen_fd), limits_(limits), handler_(std::move(handler)) {}

size_t AcceptorPool::start() {
    struct sigaction action {};
    action.sa_handler = on_wake_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: accept() must return EINTR
    SLUICE_CHECK(::sigaction(kWakeSignal, &action, nullptr) == 0);
    size_t started = 0;
    for (size_t i = 0; i < limits_.initial_threads; ++i) started += spawn() ? 1 : 0;
    return started;
}

bool AcceptorPool::spawn() {
    if (stopping_.load()) return false;
    if (threads_.fetch_add(1) >= limits_.max_threads) {
        threads_.fetch_sub(1);
        return false;
    }
    idle_.fetch_add(1);
    pthread_attr_t attr;
    // These return an error number (not -1 and errno) only for invalid arguments.
    SLUICE_CHECK_RC(pthread_attr_init(&attr));
    SLUICE_CHECK_RC(pthread_attr_setstacksize(&attr, limits_.stack_size));
    SLUICE_CHECK_RC(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
    pthread_t id;
    std::lock_guard lock(registry_mutex_);  // the new thread registers only after this insert
    const int rc = pthread_create(&id, &attr, &AcceptorPool::thread_main, this);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        threads_.fetch_sub(1);
        idle_.fetch_sub(1);
        LOG_WARN("cannot start a connection thread: %s", std::strerror(rc));
        return false;
    }
    registry_.insert(id);
    return true;
}

void* AcceptorPool::thread_main(void* self) {
    static_cast<AcceptorPool*>(self)->run_thread();
    return nullptr;
}

void AcceptorPool::run_thread() {
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, kWakeSignal);
    SLUICE_CHECK_RC(pthread_sigmask(SIG_UNBLOCK, &wake, nullptr));
    // Per-thread buffers, allocated once for every connection this thread will serve.
    // Not value-initialised (no zero fill): a page of a buffer costs memory only once bytes
    // pass through it, which keeps an idle held connection small.
    auto buffers = std::make_unique_for_overwrite<ThreadBuffers>();
    OpenConnections::Entry& connection = open_.claim();
    for (;;) {
        // Enter the accept path first, then check the flag: with the stopper's order (flag,
        // then count) one of the two always sees the other.
        accepting_.fetch_add(1);
        if (stopping_.load()) {
            accepting_.fetch_sub(1);
            break;
        }
        net::Endpoint peer;
        socklen_t peer_length = sizeof peer.storage;
        const int client = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer.storage),
                                     &peer_length, SOCK_NONBLOCK | SOCK_CLOEXEC);
        peer.length = peer_length;
        const int error = errno;
        // Counted as active before it leaves the accept path, so that stop_accepting()
        // returning and then active() reading 0 means no client is held uncounted.
        if (client >= 0) active_.fetch_add(1);
        accepting_.fetch_sub(1);
        if (client < 0) {
            if (error != EINTR) accept_failed(error);
            continue;
        }
        // This thread leaves the idle set; if it was the last one, start a successor so
        // that someone keeps accepting.
        if (idle_.fetch_sub(1) == 1) spawn();
        connection.open(client);
        handler_(client, peer, *buffers, connection);
        connection.close();  // the handler may have closed it already; waits out a cut
        ::close(client);
        active_.fetch_sub(1);
        if (idle_.load() >= limits_.max_idle) break;  // enough idle peers: retire
        idle_.fetch_add(1);
    }
    open_.release(connection);
    {
        std::lock_guard lock(registry_mutex_);
        registry_.erase(pthread_self());
    }
    threads_.fetch_sub(1);
}

void AcceptorPool::accept_failed(int error) {
    switch (error) {
        case ECONNABORTED:
        case EPROTO:
        case EPERM:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH: return;  // the client is gone before we got it: nothing to do
        default: break;
    }
    // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) or something unexpected:
    // log at most once a second and back off instead of spinning on the listener.
    const int64_t now = monotonic_ms();
    int64_t last = last_accept_error_log_.load();
    if (now - last >= 1000 && last_accept_error_log_.compare_exchange_strong(last, now))
        LOG_ERROR("accept failed: %s; backing off", std::strerror(error));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

void AcceptorPool::stop_accepting() {
    stopping_.store(true);
    while (accepting_.load() > 0) {
        {
            std::lock_guard lock(registry_mutex_);
            for (pthread_t id : registry_) pthread_kill(id, kWakeSignal);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

}  // namespace sluice::worker
