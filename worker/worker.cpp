#include "worker/worker.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "worker/acceptor_pool.hpp"

namespace sluice::worker {
namespace {

using Clock = std::chrono::steady_clock;

// How long the threads of cut connections get to log them before the process exits: well
// inside the master's 2 s from SIGQUIT to SIGKILL. A thread still connecting to a target
// (up to connect_timeout) may miss it; its connection is reset all the same.
constexpr auto kLogGrace = std::chrono::seconds(1);
// How often a draining worker looks at its master and its connections.
constexpr timespec kDrainTick{0, 20'000'000};

// The stop reason a signal carries: the master sends it as the value of its SIGTERM and
// SIGQUIT (sigqueue()). Any other sender (an operator, the kernel's death signal when the
// master dies) means a shutdown.
StopReason reason_of(const siginfo_t& info) {
    if (info.si_code != SI_QUEUE) return StopReason::shutdown;
    const int value = info.si_value.sival_int;
    return value == static_cast<int>(StopReason::reload) ? StopReason::reload
                                                         : StopReason::shutdown;
}

// The deadline has come: resets every connection still open and gives their threads a
// moment to log them, then returns (the process exits).
void cut_and_finish(AcceptorPool& pool, StopReason why) {
    const size_t cut = pool.cut_open_connections(why);
    LOG_WARN("%s: cutting %zu connection(s) still open", cut_end_name(why), cut);
    const auto deadline = Clock::now() + kLogGrace;
    while (pool.active() > 0 && Clock::now() < deadline) {
        const timespec tick{0, 5'000'000};
        nanosleep(&tick, nullptr);
    }
    if (pool.active() > 0)
        LOG_WARN("exiting with %zu cut connection(s) not yet logged", pool.active());
}

// Drains after the first SIGTERM/SIGINT: returns once every connection has finished, or cuts
// them at the deadline. The deadline is the master's SIGQUIT; a worker whose master is gone
// (killed) sets its own, shutdown_timeout from when it noticed, so it never drains forever.
void drain(AcceptorPool& pool, const Config& config, pid_t master, StopReason why,
           const sigset_t& signals) {
    bool orphaned = false;
    Clock::time_point own_deadline = Clock::time_point::max();
    while (pool.active() > 0) {
        if (!orphaned && getppid() != master) {
            orphaned = true;
            why = StopReason::shutdown;
            own_deadline = Clock::now() + config.shutdown_timeout;
            LOG_WARN("the master is gone: %zu connection(s) may finish for up to %lld ms",
                     pool.active(), static_cast<long long>(config.shutdown_timeout.count()));
        }
        if (Clock::now() >= own_deadline) return cut_and_finish(pool, why);
        siginfo_t info{};
        const int signal_number = sigtimedwait(&signals, &info, &kDrainTick);
        if (signal_number == SIGQUIT) {
            // The master's deadline, with the reason it enforces (a stop during a reload's
            // drain may come first); a bare SIGQUIT keeps the reason the drain began with.
            if (info.si_code == SI_QUEUE) why = reason_of(info);
            return cut_and_finish(pool, why);
        }
    }
    LOG_NOTICE("all connections finished");
}

}  // namespace

int run_worker(const Config& config, SharedTable& table, LoadLedger& ledger, int listen_fd,
               size_t max_connections, size_t worker_slot, pid_t master,
               const KernelRelay* kernel_relay) {
    // The pool's threads may still be finishing (or, after SIGQUIT, serving) when this
    // returns and the process exits with _exit(): the context and the pool are therefore
    // never destroyed, only left to the exit.
    const auto* context = new WorkerContext{config, table, ledger, worker_slot, kernel_relay};
    repair_active_counts(*context);
    PoolLimits limits;
    limits.max_threads = max_connections;
    auto& pool =
        *new AcceptorPool(listen_fd, limits,
                          [context](int client, const net::Endpoint& peer, ThreadBuffers& buffers,
                                    OpenConnections::Entry& connection) {
                              serve_connection(client, peer, *context, buffers, connection);
                          });
    if (pool.start() == 0) {
        // No thread could start (out of tasks): a worker that accepts nothing must not tell
        // the master it serves. It exits; the master respawns it, or abandons the reload.
        LOG_ERROR("no connection thread could start: exiting");
        return kExitFailure;
    }
    // Tells the master this worker serves (a reload retires the old generation only then).
    table.worker_accepting[worker_slot].store(1);
    LOG_DEBUG("accepting: up to %zu connections at once", max_connections);

    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGTERM, SIGINT, SIGQUIT}) sigaddset(&signals, s);
    siginfo_t info{};
    int signal_number = -1;
    while ((signal_number = sigwaitinfo(&signals, &info)) < 0) {
    }
    const StopReason why = reason_of(info);

    // Stop accepting, give the listening socket back (the master and the next generation
    // keep it open), and let the connections being served finish until the deadline.
    pool.stop_accepting();
    ::close(listen_fd);
    if (signal_number == SIGQUIT) {  // at once: open connections are cut
        cut_and_finish(pool, why);
        pool.detach_retired();
        return 0;
    }
    LOG_NOTICE("%s: stopped accepting; %zu connection(s) to finish", strsignal(signal_number),
               pool.active());
    drain(pool, config, master, why, signals);
    pool.detach_retired();
    return 0;
}

}  // namespace sluice::worker
