// sluice: the master process. Parses the command line and the config, opens the listening
// socket and the shared segment, then hands over to the Supervisor, which forks the health
// checker and the workers.

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>

#include "common/exit_codes.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "conf/loader.hpp"
#include "master/cli.hpp"
#include "master/supervisor.hpp"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

namespace {

using namespace sluice;

// Raises the open-file soft limit to the hard one and returns it: a proxied connection
// holds two descriptors, so this is what bounds the connections a worker can serve.
rlim_t raise_open_file_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    return limit.rlim_cur;
}

int run(int argc, char** argv) {
    CliOptions cli;
    try {
        cli = parse_cli(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sluice: %s (see --help)\n", e.what());
        return kExitFailure;
    }
    if (cli.show_help) {
        std::cout << cli.help_text;
        return kExitOk;
    }
    if (cli.show_version) {
        std::cout << "sluice " << SLUICE_VERSION << "\n";
        return kExitOk;
    }

    Config config;
    try {
        config = load_config(cli.config_path);
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "sluice: configuration error: %s", e.what());
        return kExitFailure;
    }
    if (cli.check_only) {
        std::printf("OK\n");
        return kExitOk;
    }

    log::set_role("master");
    log::set_level(log::parse_level(config.log_level));
    const unsigned workers = Supervisor::worker_count(cli.workers, config);
    const rlim_t open_files = raise_open_file_limit();
    // Two descriptors per connection, and a reserve for the listener, logs and the like.
    const size_t max_connections = open_files > 128 ? (open_files - 64) / 2 : 32;

    signal(SIGPIPE, SIG_IGN);
    const sigset_t blocked = Supervisor::signal_set();
    sigprocmask(SIG_BLOCK, &blocked, nullptr);  // before any fork: children inherit it

    UniqueFd listener;
    try {
        listener = net::listen_tcp(config.listen, 4096);
    } catch (const std::exception& e) {
        LOG_ERROR("cannot listen on %s: %s", config.listen.to_string().c_str(), e.what());
        return kExitFailure;
    }
    UniqueFd admin;
    if (config.admin) {
        try {
            admin = net::listen_tcp(*config.admin, 64);
        } catch (const std::exception& e) {
            LOG_ERROR("cannot listen on the admin address %s: %s",
                      config.admin->to_string().c_str(), e.what());
            return kExitFailure;
        }
        LOG_NOTICE("admin listener on %s: /, /status, /metrics",
                   net::local_endpoint(admin.get()).to_string().c_str());
    }
    LOG_NOTICE(
        "sluice %s listening on %s: %u worker(s), %zu target(s), up to %zu connections "
        "per worker",
        SLUICE_VERSION, net::local_endpoint(listener.get()).to_string().c_str(), workers,
        config.targets.size(), max_connections);
    Supervisor supervisor(cli.config_path, cli.workers, max_connections, std::move(listener),
                          std::move(admin), make_generation(std::move(config), workers, nullptr));
    return supervisor.run();
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
