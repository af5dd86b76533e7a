#pragma once
// Small helpers shared by the commands that run other processes and write result files.
#include <filesystem>
#include <string>
#include <vector>

namespace rmai::cli {

// The repository's revision (`git describe --dirty`, "unknown" outside a checkout) and the SimGrid
// version built against: the provenance of config.resolved.yaml and of `rmai --version`.
std::string git_revision();
std::string simgrid_version();

// The whole file as a string ("" when it cannot be read).
std::string slurp(const std::filesystem::path& path);

// Debian's interpreter, which has python3-matplotlib (scripts/setup.sh), for the plots/ scripts; a
// `python3` earlier on PATH (pyenv, a virtualenv) may lack it.
std::string python();

// A value of the validation tables: 6 significant digits (%.6g), "nan" for NaN.
std::string csv_number(double v);
}  // namespace rmai::cli
