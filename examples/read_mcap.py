"""Label maps out of a streamseg MCAP file with the mcap library: python read_mcap.py run.mcap

Needs only `pip install mcap mcap-ros2-support numpy` (not streamseg).
"""

import sys

import numpy as np
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

with open(sys.argv[1], "rb") as file:
    reader = make_reader(file, decoder_factories=[DecoderFactory()])
    for _, channel, message, image in reader.iter_decoded_messages():
        if channel.topic.endswith("/labels"):  # sensor_msgs/msg/Image, mono8: pixel value = class id
            labels = np.frombuffer(image.data, np.uint8).reshape(image.height, image.width)
            print(channel.topic, message.log_time / 1e9, labels.shape, np.bincount(labels.ravel()).argmax())
