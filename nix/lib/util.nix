# Helpers the lib/ files share (builtins only); not part of lib's
# attribute set, but for sortUnique.
rec {
  sortedNames = attrs: builtins.sort builtins.lessThan (builtins.attrNames attrs);

  sortUnique =
    list:
    builtins.sort builtins.lessThan (
      builtins.attrNames (builtins.listToAttrs (map (x: {
        name = x;
        value = null;
      }) list))
    );

  hasSuffix =
    suffix: s:
    let
      ls = builtins.stringLength s;
      lx = builtins.stringLength suffix;
    in
    ls >= lx && builtins.substring (ls - lx) lx s == suffix;

  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;

  # How often sep occurs in s (builtins.split puts each match between two
  # strings).
  count = sep: s: (builtins.length (builtins.split sep s) - 1) / 2;

  concatLines = lines: builtins.concatStringsSep "" (map (l: l + "\n") lines);

  # The services portclaim knows by name; the Go built-in map reads the
  # same file.
  knownServicesFile = builtins.fromJSON (builtins.readFile ../../pkg/manifest/known-services.json);

  unitTypes = [
    "service"
    "socket"
    "device"
    "mount"
    "automount"
    "swap"
    "target"
    "path"
    "timer"
    "slice"
    "scope"
  ];
}
