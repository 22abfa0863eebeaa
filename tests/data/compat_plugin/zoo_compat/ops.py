"""GPT-2's Conv1D stores a projection as [in, out]; nn.Linear wants [out, in]. No MLX import."""

from zoo_registry.sanitize import Op


class Conv1DToLinear(Op):
    name = "compat_conv1d_to_linear"
    params = ("in_features",)
    in_axis = 0  # where in_features is found in the input

    def __init__(self, in_features: int):
        super().__init__(in_features=in_features)
        self.in_features = in_features

    def forward(self, xp, inputs, *, suffix=None):
        (x,) = inputs
        if len(x.shape) != 2 or x.shape[self.in_axis] != self.in_features:
            raise ValueError(f"expected in_features {self.in_features} on axis {self.in_axis}, got {list(x.shape)}")
        return [xp.transpose(x, [1, 0])]

    def inverse(self):
        return LinearToConv1D(self.in_features)


class LinearToConv1D(Conv1DToLinear):
    name = "compat_linear_to_conv1d"
    in_axis = 1

    def inverse(self):
        return Conv1DToLinear(self.in_features)
