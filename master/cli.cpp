#include "master/cli.hpp"

#include "common/limits.hpp"

#include <boost/program_options.hpp>
#include <sstream>
#include <stdexcept>

namespace sluice {

namespace po = boost::program_options;

CliOptions parse_cli(int argc, const char* const* argv) {
    CliOptions options;
    int workers = 0;
    po::options_description described(
        "Usage: sluice --config FILE [--workers N] [--check]\n\n"
        "sluice: a layer-4 (TCP) load balancer: round robin over healthy targets.\n\nOptions");
    described.add_options()("config,c",
                            po::value<std::string>(&options.config_path)->value_name("FILE"),
                            "the TOML config file")(
        "workers,w", po::value<int>(&workers)->value_name("N"),
        "accept worker processes (default: `workers` in the config, else the number of online "
        "CPUs)")("check", po::bool_switch(&options.check_only),
                 "load and validate the config, print OK or the errors, exit 0 or 1")(
        "version", po::bool_switch(&options.show_version), "print the version and exit")(
        "help,h", po::bool_switch(&options.show_help), "print this help and exit");
    std::ostringstream help;
    help << described;
    options.help_text = help.str();

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(described).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw std::invalid_argument(e.what());
    }
    if (options.show_help || options.show_version) return options;
    if (options.config_path.empty()) throw std::invalid_argument("--config FILE is required");
    if (vm.count("workers")) {
        if (workers < 1 || workers > static_cast<int>(kMaxWorkers))
            throw std::invalid_argument("--workers must be between 1 and " +
                                        std::to_string(kMaxWorkers));
        options.workers = static_cast<unsigned>(workers);
    }
    return options;
}

}  // namespace sluice
