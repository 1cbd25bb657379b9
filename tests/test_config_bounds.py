"""Values shown in configuration errors are bounded: an alias bomb is refused at once."""
import dataclasses

import pytest

from nirvision.config import ConfigError, load_yaml, show_value


@dataclasses.dataclass
class Small:
    width: int = 4


def bomb(levels: int) -> str:
    names = "abcdefghij"
    parts = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    parts += [f"&{names[i]} [" + ",".join([f"*{names[i - 1]}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def test_a_model_config_alias_bomb_gives_a_short_error(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(f"width: {bomb(7)}\n")  # 9^7 strings: 40 MB as a repr (9 levels: gigabytes)
    with pytest.raises(ConfigError) as exc:
        load_yaml(Small, path)
    text = str(exc.value)
    assert text.startswith(f"{path}: key 'width': expected an integer, got [['lol', 'lol'") and text.endswith("...") and len(text) < 400


def test_show_value_is_repr_for_small_values_and_cut_for_large_ones():
    small = [1, (2,), {"k": "v", 3: None}, True, 1.5, b"ab", ()]
    assert show_value(small) == repr(small)
    looped = [1]
    looped.append(looped)
    assert show_value(looped) == repr(looped) == "[1, [...]]"
    assert show_value("x" * 1000) == "'" + "x" * 199 + "..."
    assert show_value(10 ** 5000).startswith("<an integer of about 500")  # repr would refuse (4300 digits at most)
    assert show_value(["rtsp://u:pw@h/x"], mask=lambda s: s.replace("pw", "***")) == "['rtsp://u:***@h/x']"
