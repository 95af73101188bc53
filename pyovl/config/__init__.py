"""The configuration model: what an operator declares, validated.

props.py   overlay(5) properties: specs, parsing, dladm's messages
specs.py   OverlaySpec and VnicSpec, built only through build_overlay/build_vnic
rules.py   create-overlay options as text (-p lists, Danube's rules)
load.py    overlay.json -> Config, validated whole
"""
