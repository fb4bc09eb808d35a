"""Video encoding settings: a preset that does not suit the codec is refused when configured, not at save time."""
import pytest

from vqbet_ros.data.video_encoder import VideoEncoding


@pytest.mark.parametrize("codec, preset", [("libx264", "12"), ("libsvtav1", "veryfast"), ("libsvtav1", "14")])
def test_video_encoding_refuses_a_preset_of_another_codec(codec, preset):
    with pytest.raises(ValueError, match=f"`preset` '{preset}' does not suit codec '{codec}'"):
        VideoEncoding(codec=codec, preset=preset)


@pytest.mark.parametrize("codec, expected", [("libsvtav1", "12"), ("libx264", "ultrafast")])
def test_video_encoding_empty_preset_is_the_codecs_realtime_preset(codec, expected):
    assert VideoEncoding(codec=codec).stream_options()["preset"] == expected


def test_video_encoding_keeps_an_explicit_preset():
    assert VideoEncoding(codec="libx264", preset="veryfast").stream_options()["preset"] == "veryfast"
