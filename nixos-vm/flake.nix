# Lightscale's NixOS VM tests.
#
#   nix build ./nixos-vm#checks.x86_64-linux.lab-2node     (from the repository root)
#   cd nixos-vm && nix build .#checks.x86_64-linux.lab-5node
#   nix run ./nixos-vm#checks.x86_64-linux.lab-2node.driverInteractive   (poke at the VMs)
#
# The flake lives in a subdirectory of the repository; the package is built from the whole
# repository (../.). See README.md for what has and has not been run.
{
  description = "Lightscale: package, NixOS module (services.lightscale) and VM tests";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAll (pkgs: rec {
        lightscale = pkgs.callPackage ./package.nix { src = ../.; };
        default = lightscale;
      });

      overlays.default = final: prev: {
        lightscale = final.callPackage ./package.nix { src = ../.; };
      };

      nixosModules.lightscale = import ./module.nix;
      nixosModules.default = self.nixosModules.lightscale;

      checks = forAll (pkgs:
        let
          lab = file: pkgs.testers.runNixOSTest (import file {
            lightscaleModule = self.nixosModules.lightscale;
            lightscalePackage = self.packages.${pkgs.system}.lightscale;
          });
        in
        {
          lab-2node = lab ./tests/lab-2node.nix;
          lab-5node = lab ./tests/lab-5node.nix;
          package = self.packages.${pkgs.system}.lightscale;
        });
    };
}
