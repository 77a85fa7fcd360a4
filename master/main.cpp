// sluice: the master process. Parses the command line and the config, opens the listening
// sockets and the shared segment, then hands over to the Supervisor, which forks the health
// checker and the workers.
//
// Errors (docs/ARCHITECTURE.md, "Errors"): a usage, config or start-up error is an exception
// that ends here as exit code kExitFailure with one line on stderr or in the log.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <iostream>
#include <optional>

#include "common/check.hpp"
#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "conf/loader.hpp"
#include "master/cli.hpp"
#include "master/listeners.hpp"
#include "master/relay_setup.hpp"
#include "master/supervisor.hpp"
#include "master/task_budget.hpp"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

namespace {

using namespace sluice;

// Descriptors a worker keeps for itself (listeners, logs, the segment, the resolver...).
constexpr rlim_t kReservedFds = 64;

// Raises the open-file soft limit to the hard one (always allowed) and returns it.
rlim_t raise_open_file_limit() {
    rlimit limit{};
    SLUICE_CHECK(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        SLUICE_CHECK(setrlimit(RLIMIT_NOFILE, &limit) == 0);
    }
    return limit.rlim_cur;
}

// Connections one worker can hold with `open_files` descriptors: two each, past the reserve.
size_t connections_per_worker(rlim_t open_files) {
    if (open_files <= 2 * kReservedFds) return kReservedFds / 2;
    return (open_files - kReservedFds) / 2;
}

// Ignores SIGPIPE (a peer that went away is an errno, not a signal) and blocks the signals
// the master takes with sigtimedwait(), before any fork: the children inherit the mask.
void prepare_signals() {
    SLUICE_CHECK(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
    const sigset_t blocked = Supervisor::signal_set();
    SLUICE_CHECK(sigprocmask(SIG_BLOCK, &blocked, nullptr) == 0);
}

// Parses the command line and answers --help and --version: an exit code when that is all
// there is to do, else nullopt with `cli` filled in.
std::optional<int> answer_command_line(int argc, char** argv, CliOptions& cli) {
    try {
        cli = parse_cli(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluice: %s (see --help)\n", e.what());
        return kExitFailure;
    }
    if (cli.show_help) std::cout << cli.help_text;
    if (cli.show_version) std::cout << "sluice " << SLUICE_VERSION << "\n";
    if (cli.show_help || cli.show_version) return kExitOk;
    return std::nullopt;
}

// Opens the listeners and generation 1 for `config`, then supervises until stopped.
int serve(const CliOptions& cli, Config config) {
    log::set_role("master");
    log::set_level(config.log_level);
    const unsigned workers = Supervisor::worker_count(cli.workers, config);
    const size_t fd_cap = connections_per_worker(raise_open_file_limit());
    const TaskLimits tasks = read_task_limits();
    const std::optional<uint64_t> task_budget = tasks.budget();
    const size_t task_cap =
        task_budget ? threads_per_worker(*task_budget, workers, config.targets.size()) : SIZE_MAX;
    const size_t max_connections = std::min(fd_cap, task_cap);
    prepare_signals();
    RelaySetup relays;
    try {
        relays.prepare(config);
    } catch (const std::runtime_error& e) {
        LOG_ERROR("%s", e.what());
        return kExitFailure;
    }
    Listeners listeners;
    try {
        listeners = open_listeners(config, nullptr);
    } catch (const ListenError& e) {
        LOG_ERROR("%s", e.what());
        return kExitFailure;
    }
    LOG_NOTICE(
        "sluice %s listening on %s: %u worker(s), %zu target(s), up to %zu connections "
        "per worker (open files allow %zu; task limits: %s, allow %s); relay: %s",
        SLUICE_VERSION, net::local_endpoint(listeners.traffic.get()).to_string().c_str(), workers,
        config.targets.size(), max_connections, fd_cap, tasks.describe().c_str(),
        task_budget ? std::to_string(task_cap).c_str() : "any", relays.describe(config).c_str());
    Supervisor supervisor(cli.config_path, cli.workers, fd_cap, task_budget, std::move(listeners),
                          make_generation(std::move(config), workers, nullptr), std::move(relays));
    return supervisor.run();
}

int run(int argc, char** argv) {
    CliOptions cli;
    if (const std::optional<int> code = answer_command_line(argc, argv, cli)) return *code;
    Config config;
    try {
        config = load_config(cli.config_path);
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "sluice: configuration error: %s", e.what());
        return kExitFailure;
    }
    if (cli.check_only) {
        // Like nginx -t: what would fail at start fails here (the kernel relay, if required).
        if (config.relay == RelayMode::kernel) {
            try {
                RelaySetup().prepare(config);
            } catch (const std::runtime_error& e) {
                std::fprintf(stderr, "sluice: %s\n", e.what());
                return kExitFailure;
            }
        }
        std::printf("OK\n");
        return kExitOk;
    }
    return serve(cli, std::move(config));
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluice: %s\n", e.what());
        return kExitFailure;
    }
}
