#pragma once
// The command line (Boost.ProgramOptions).

#include <optional>
#include <string>

namespace sluice {

struct CliOptions {
    std::string config_path;
    std::optional<unsigned> workers;  // wins over `workers` in the config
    bool check_only = false;          // --check: validate the config and exit, like nginx -t
    bool show_help = false;
    bool show_version = false;
    std::string help_text;
};

// Parses argv. Throws std::invalid_argument with a message meant for the user.
CliOptions parse_cli(int argc, const char* const* argv);

}  // namespace sluice
