#include "worker/acceptor_pool.hpp"

#include <link.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
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

// Where the stack's top (and so the end of glibc's thread descriptor and the start of the
// buffers) lies in its page; see ThreadMemory.
constexpr size_t kTopOffset = ThreadBuffers::kPageOffset;
static_assert(kTopOffset % 64 == 0);  // glibc aligns the descriptor to 64 bytes below it

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

size_t page_size() { return static_cast<size_t>(::sysconf(_SC_PAGESIZE)); }

// What glibc takes from the top of a thread's stack before the first frame: the static TLS of
// the modules loaded at start (a sanitizer's runtime keeps most of a megabyte there), then
// its thread descriptor and a reserve for modules loaded later (4 KiB together with glibc
// 2.36; kDescriptorAndReserve allows for more). glibc refuses a stack too small for them.
constexpr size_t kDescriptorAndReserve = size_t{16} * 1024;

size_t stack_top_reserve() {
    size_t tls = 0;
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* total) {
            for (size_t i = 0; i < info->dlpi_phnum; ++i) {
                const ElfW(Phdr)& header = info->dlpi_phdr[i];
                if (header.p_type == PT_TLS)
                    *static_cast<size_t*>(total) +=
                        round_up(header.p_memsz, std::max<size_t>(header.p_align, 1));
            }
            return 0;
        },
        &tls);
    return tls + kDescriptorAndReserve;
}

}  // namespace

// One pool thread's memory: a single anonymous mapping, from low to high addresses
//
//   guard page | stack ...... static TLS, glibc's descriptor | ThreadBuffers
//                                                            ^ the stack's top, kTopOffset
//                                                              bytes into its page
//
// glibc puts its thread descriptor (struct pthread: 2.3 KiB with glibc 2.36) and the static
// TLS (the modules' blocks, 0.3 KiB, and below them a reserve of 1.6 KiB that nothing
// writes) at the top of the stack it is given, and starts the stack below them. With the
// top 3 KiB into a page, the descriptor and the first kilobyte of the buffers (the candidate
// list, then the start of what the client sent) share one page, and the frames of a
// connection that waits in poll() (1.5 KiB) fit in the page below: a thread holding an idle
// connection has two pages of its mapping resident. Its log line at the end formats 5 KiB
// deep, a page more, and a reply from the target writes the first page of to_client. With
// glibc's own stacks the descriptor and the TLS filled the top page alone, the candidate
// list on the stack kept a third page apart, and the buffers on the heap took one or two
// more. Another glibc's sizes can cost a page more, never correctness.
//
// Used by one thread at a time: the thread that runs in it, then (once joined) the pool.
class AcceptorPool::ThreadMemory {
public:
    // The size of the stack to give a thread whose frames may take `frames` bytes: with what
    // glibc keeps at its top, and ending kTopOffset bytes into a page.
    static size_t stack_bytes_for(size_t frames) {
        return round_up(frames + stack_top_reserve(), page_size()) + kTopOffset;
    }

    // Maps the memory of a thread with a stack of `stack_bytes` (from stack_bytes_for()).
    // Null (errno set) when the kernel refuses: out of memory or of mappings.
    static std::unique_ptr<ThreadMemory> map(size_t stack_bytes) {
        const size_t page = page_size();
        const size_t length = round_up(page + stack_bytes + sizeof(ThreadBuffers), page);
        void* base = ::mmap(nullptr, length, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (base == MAP_FAILED) return nullptr;
        // A stack overflow faults on the guard page instead of writing over other memory.
        if (::mprotect(base, page, PROT_NONE) != 0) {
            const int error = errno;
            ::munmap(base, length);
            errno = error;
            return nullptr;
        }
        return std::unique_ptr<ThreadMemory>(
            new ThreadMemory(static_cast<char*>(base), length, page, stack_bytes));
    }

    ~ThreadMemory() { ::munmap(base_, length_); }
    ThreadMemory(const ThreadMemory&) = delete;
    ThreadMemory& operator=(const ThreadMemory&) = delete;

    void* stack_low() const { return base_ + guard_; }
    size_t stack_bytes() const { return stack_bytes_; }
    // The buffers start at the stack's top. Writes nothing (see ThreadBuffers()).
    ThreadBuffers& buffers() const { return *new (base_ + guard_ + stack_bytes_) ThreadBuffers; }

    // Gives every page back to the kernel; the next thread faults in only what it writes.
    void forget() { SLUICE_CHECK(::madvise(base_ + guard_, length_ - guard_, MADV_DONTNEED) == 0); }

    AcceptorPool* pool = nullptr;  // of the thread running in it

private:
    ThreadMemory(char* base, size_t length, size_t guard, size_t stack_bytes)
        : base_(base), length_(length), guard_(guard), stack_bytes_(stack_bytes) {}

    char* const base_;
    const size_t length_;
    const size_t guard_;
    const size_t stack_bytes_;
};

AcceptorPool::AcceptorPool(int listen_fd, PoolLimits limits, Handler handler)
    : listen_fd_(listen_fd),
      limits_(limits),
      stack_bytes_(ThreadMemory::stack_bytes_for(limits.stack_size)),
      handler_(std::move(handler)) {}

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
    std::lock_guard lock(registry_mutex_);  // the new thread registers only after this insert
    reap_retired();
    std::unique_ptr<ThreadMemory> memory;
    if (!spare_.empty()) {
        memory = std::move(spare_.back());
        spare_.pop_back();
    } else {
        memory = ThreadMemory::map(stack_bytes_);
    }
    int rc = memory ? 0 : errno;
    pthread_t id{};
    if (memory) {
        memory->pool = this;
        pthread_attr_t attr;
        // These return an error number (not -1 and errno) only for invalid arguments.
        SLUICE_CHECK_RC(pthread_attr_init(&attr));
        SLUICE_CHECK_RC(pthread_attr_setstack(&attr, memory->stack_low(), memory->stack_bytes()));
        rc = pthread_create(&id, &attr, &AcceptorPool::thread_main, memory.get());
        pthread_attr_destroy(&attr);
        // Started: the memory is the thread's until it retires (then it is in retired_).
        if (rc == 0) static_cast<void>(memory.release());
    }
    if (rc != 0) {
        threads_.fetch_sub(1);
        idle_.fetch_sub(1);
        if (memory && spare_.size() < limits_.max_idle) spare_.push_back(std::move(memory));
        LOG_WARN("cannot start a connection thread: %s", std::strerror(rc));
        return false;
    }
    registry_.insert(id);
    return true;
}

void AcceptorPool::reap_retired() {
    // A retired thread may still be unwinding on its stack: its memory is free only once it
    // can be joined (the kernel has cleared its thread id, after its last instruction).
    for (size_t i = 0; i < retired_.size();) {
        const int rc = pthread_tryjoin_np(retired_[i].first, nullptr);
        if (rc == EBUSY) {
            ++i;
            continue;
        }
        SLUICE_CHECK_RC(rc);
        std::unique_ptr<ThreadMemory> memory(retired_[i].second);
        retired_[i] = retired_.back();
        retired_.pop_back();
        if (spare_.size() < limits_.max_idle) {
            memory->forget();
            spare_.push_back(std::move(memory));
        }  // else unmapped here
    }
}

void* AcceptorPool::thread_main(void* memory) {
    auto& mine = *static_cast<ThreadMemory*>(memory);
    mine.pool->run_thread(mine);
    return nullptr;
}

void AcceptorPool::run_thread(ThreadMemory& memory) {
    sigset_t wake;
    sigemptyset(&wake);
    sigaddset(&wake, kWakeSignal);
    SLUICE_CHECK_RC(pthread_sigmask(SIG_UNBLOCK, &wake, nullptr));
    // The thread's buffers, for every connection it will serve: in its own mapping, above
    // its stack (ThreadMemory).
    ThreadBuffers& buffers = memory.buffers();
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
        handler_(client, peer, buffers, connection);
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
        // Joined at a later start or retirement, which then takes its memory back; at exit,
        // its memory goes with the process.
        if (detach_on_retire_) {
            SLUICE_CHECK_RC(pthread_detach(pthread_self()));
        } else {
            reap_retired();
            retired_.emplace_back(pthread_self(), &memory);
        }
    }
    threads_.fetch_sub(1);
}

void AcceptorPool::detach_retired() {
    std::lock_guard lock(registry_mutex_);
    detach_on_retire_ = true;
    for (const auto& [id, memory] : retired_) SLUICE_CHECK_RC(pthread_detach(id));
    retired_.clear();
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
