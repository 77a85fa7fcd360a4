#pragma once
// Reads a TOML config file into a Config. Every error names FILE:LINE and what is wrong.

#include <string>

#include "conf/config.hpp"

namespace sluice {

// Loads and validates `path`. Throws ConfigError.
Config load_config(const std::string& path);

// The same from text already in memory; `name` stands for the file in messages.
Config parse_config(const std::string& text, const std::string& name);

}  // namespace sluice
