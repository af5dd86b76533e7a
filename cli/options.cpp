#include "cli/options.hpp"

#include <charconv>
#include <iostream>
#include <map>

#include "config/errors.hpp"

namespace rmai::cli {
namespace {

std::map<const CLI::App*, Action>& actions() {
  static std::map<const CLI::App*, Action> registered;
  return registered;
}

// The old hand-written parsers refused `--out --set`: CLI11 would take "--set" as the value. An
// empty value (`--out ""`) is no value either: silently taking the default would write elsewhere.
const CLI::Validator kNotAnOption(
    [](const std::string& value) {
      if (value.empty()) return std::string("needs a value, got an empty one");
      return value.rfind("--", 0) == 0 ? "needs a value, not the option " + value : std::string();
    },
    "");

std::vector<std::string>& arguments() {
  static std::vector<std::string> given;
  return given;
}

std::string help_hint(const CLI::App& app) { return " (" + command_path(app) + " --help)"; }

// The subcommand given on the command line (the deepest), or the root.
const CLI::App& chosen(const CLI::App& root) {
  const CLI::App* app = &root;
  for (auto subs = app->get_subcommands(); !subs.empty(); subs = app->get_subcommands()) app = subs.front();
  return *app;
}

// What a command did not recognize, from the root down to the chosen one: the first is refused.
void refuse_extras(const CLI::App& root) {
  const CLI::App& last = chosen(root);
  for (const CLI::App* app = &last; app; app = app->get_parent()) {
    const auto extras = app->remaining(false);
    if (extras.empty()) continue;
    const std::string& x = extras.front();
    if (x.size() > 1 && x[0] == '-') throw InputError(x, "unknown option" + help_hint(*app));
    if (!app->get_subcommands({}).empty()) {
      const std::string noun = app->get_parent() ? app->get_name() + " tool" : "command";
      throw InputError("", "unknown " + noun + " \"" + x + "\"" + help_hint(*app));
    }
    throw InputError(x, "unexpected argument" + help_hint(*app));
  }
}

// A required option (or positional argument) that was not given.
[[noreturn]] void refuse_missing(const CLI::App& app, const std::string& fallback) {
  for (const CLI::Option* option : app.get_options()) {
    if (!option->get_required() || option->count() > 0) continue;
    if (!option->nonpositional()) throw InputError("", "no " + option->get_description() + " given" + help_hint(app));
    throw InputError(option->get_name(), "is required" + help_hint(app));
  }
  throw InputError("", fallback + help_hint(app));
}

}  // namespace

CLI::App* add_command(CLI::App& parent, const std::string& name, const std::string& description, Action action) {
  CLI::App* app = parent.add_subcommand(name, description);
  app->allow_extras();
  if (action) actions()[app] = std::move(action);
  return app;
}

void set_action(const CLI::App& app, Action action) { actions()[&app] = std::move(action); }

const std::vector<std::string>& command_line() { return arguments(); }

CLI::Option* add_each(CLI::App* app, const std::string& names, std::function<void(const std::string&)> each,
                      const std::string& description) {
  return app->add_option_function<std::string>(names, std::move(each), description)
      ->trigger_on_parse()  // every occurrence, in command-line order
      ->check(kNotAnOption);
}

CLI::Option* add_value(CLI::App* app, const std::string& names, std::string& into, const std::string& description) {
  return add_each(app, names, [&into](const std::string& value) { into = value; }, description);
}

CLI::Option* add_values(CLI::App* app, const std::string& names, std::vector<std::string>& into,
                        const std::string& description) {
  return add_each(app, names, [&into](const std::string& value) { into.push_back(value); }, description);
}

void add_experiment_args(CLI::App* app, ExperimentArgs& args) {
  app->add_option("EXP.yaml", args.file, "experiment file")->required();
  auto& sets = args.sets;
  add_values(app, "--set", sets, "override a key of the experiment (repeatable): --set cache.gpu_experts=128")
      ->type_name("KEY=VALUE");
  add_each(app, "--seed", [&sets](const std::string& v) { sets.push_back("seed=" + v); }, "the same as --set seed=N")
      ->type_name("N");
  add_each(app, "--mode", [&sets](const std::string& v) { sets.push_back("mode=" + v); },
           "sim (the simulator, default) or emul (the emulator on this machine); the same as --set mode=M")
      ->type_name("M");
}

std::uint64_t parse_count(const std::string& option, const std::string& text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    throw InputError(option, "'" + text + "' is not a non-negative integer");
  return value;
}

std::string command_path(const CLI::App& app) {
  return app.get_parent() ? command_path(*app.get_parent()) + " " + app.get_name() : app.get_name();
}

int run_command_line(CLI::App& root, int argc, char** argv) {
  arguments().assign(argv + 1, argv + argc);
  // `rmai help CMD [TOOL]` is `rmai CMD [TOOL] --help`.
  const bool help = argc > 1 && std::string(argv[1]) == "help";
  std::vector<std::string> args(argv, argv + argc);
  if (help) {
    args.erase(args.begin() + 1);
    args.push_back("--help");
  }
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend() - 1);  // CLI11's order: the last first
    root.parse(reversed);
  } catch (const CLI::Success& e) {  // --help, --version
    if (help) refuse_extras(root);  // `rmai help nosuch`
    return root.exit(e, std::cout, std::cerr);
  } catch (const CLI::RequiredError& e) {
    refuse_extras(root);  // a misspelt option is the better explanation
    refuse_missing(chosen(root), e.what());
  } catch (const CLI::ArgumentMismatch& e) {
    const std::string what = e.what();
    // CLI11 runs out of arguments only after the last one, the option lacking its value.
    if (args.size() > 1 && what.ends_with(" missing"))
      throw InputError(args.back(), "needs a value" + help_hint(chosen(root)));
    throw InputError("", what + help_hint(chosen(root)));
  } catch (const CLI::ParseError& e) {
    throw InputError("", e.what() + help_hint(chosen(root)));
  }
  refuse_extras(root);
  const CLI::App& app = chosen(root);
  const auto it = actions().find(&app);
  if (it == actions().end()) {  // `rmai` or `rmai trace` alone
    std::cerr << app.help(app.get_parent() ? command_path(*app.get_parent()) : "");
    return 2;
  }
  return it->second();
}

}  // namespace rmai::cli
