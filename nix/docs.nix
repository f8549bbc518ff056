# docs/options.md from the option declarations of both modules, with
# nixpkgs' lib alone: the modules are evaluated for their options only, on
# an empty package set (defaults that need packages have a defaultText).
#
#   import ./nix/docs.nix { lib = <nixpkgs>/lib; root = ./.; }
#
# lib needs no lib.hm: only the options are read, never the config.
{ lib, root }:
let
  optionsOf =
    module:
    (lib.evalModules {
      modules = [
        module
        {
          _module.check = false;
          _module.args.pkgs = { };
        }
      ];
    }).options;

  # Declarations as paths relative to the repository.
  relative = d: lib.removePrefix (toString root + "/") (toString d);

  # " value" for one line, a fenced block below the item for more.
  render =
    v:
    if v._type or "" == "literalMD" then
      " " + lib.concatStringsSep " " (lib.filter (w: w != "") (lib.splitString "\n" v.text))
    else if lib.hasInfix "\n" v.text then
      "\n\n  ```nix\n${lib.concatMapStrings (l: "  ${l}\n") (lib.splitString "\n" (lib.removeSuffix "\n" v.text))}  ```"
    else
      " `${v.text}`";

  # The descriptions use nixpkgs' MyST roles ({file}`x`, {option}`x`), which
  # its manual renders; plain Markdown would show them as written: code.
  roles = [
    "file"
    "option"
    "command"
    "env"
    "var"
    "manpage"
  ];
  markdown = builtins.replaceStrings (map (r: "{${r}}`") roles) (map (_: "`") roles);

  option =
    o:
    ''
      ### `${o.name}`

      ${markdown (lib.removeSuffix "\n" o.description)}

      - type: ${o.type}${lib.optionalString o.readOnly " (read-only)"}
    ''
    + lib.optionalString (o ? default) "- default:${render o.default}\n"
    + lib.optionalString (o ? example) "- example:${render o.example}\n"
    + "- declared in: ${lib.concatMapStringsSep ", " (d: "`${relative d}`") o.declarations}\n";

  section =
    title: module:
    let
      docs = builtins.filter (o: o.visible && !o.internal && lib.hasPrefix "services.portclaim." o.name) (
        lib.optionAttrSetToDocList (optionsOf module)
      );
    in
    "## ${title}\n\n" + lib.concatMapStringsSep "\n" option docs;
in
''
  # portclaim's options

  Generated from the option declarations (`nix/docs.nix`); do not edit.
  `go test ./nixos-tests/moduleeval -run TestOptionsDoc -update` rewrites
  it, and that test fails while it is stale.

''
+ section "NixOS (`nixosModules.default`)" (root + "/nix/nixos.nix")
+ "\n"
+ section "home-manager (`homeModules.default`)" (root + "/nix/home-manager.nix")
