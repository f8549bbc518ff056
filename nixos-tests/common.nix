# What both NixOS VM tests' machines share: home-manager and portclaim's
# NixOS module imported, and alice, lingering, so her user manager runs
# from boot (as the nspawn machines' alice does).
{ home-manager, portclaimModules }:
{
  imports = [
    home-manager.nixosModules.home-manager
    portclaimModules.nixos
  ];
  users.users.alice = {
    isNormalUser = true;
    uid = 1000;
    linger = true;
  };
  home-manager.users.alice = {
    imports = [ portclaimModules.homeManager ];
    home.stateVersion = "26.05";
  };
}
