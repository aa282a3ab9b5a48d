"""Smart Regions options (no heavy imports: the Qt effect reads the defaults at startup)."""
from dataclasses import dataclass


@dataclass
class RegionsOptions:
    region_size_mm: float = 16.0  # SupervoxelParameters' defaults (a test keeps them equal)
    compactness: float = 0.5
    split_separation: float = 0.0  # > 0 cuts two-tissue regions (region_split); off: 256^3 takes ~4.5 s with it
    mode: str = "3d"  # "3d" supervoxels or "2d" superpixels of the clicked slice
    # Smart merge: a click also takes similar neighbouring regions. "auto" compares region means as quantiles
    # of the image (within merge_rank_fraction of the voxels), which works on MRI and CT alike; "range" is the
    # older 4 % of the intensity range (fine on MRI, 68 HU on CT: it swallowed liver, fluid and soft tissue);
    # a number is a tolerance in image units; None turns smart merge off.
    merge_tolerance: object = "auto"
    merge_rank_fraction: float = 0.03
    merge_hops: int = 10
    # A single click whose 3x3x3 mean lies more than this many region deviations from its region's mean (the
    # partial-volume rim of a nodule, a leaked edge) takes only the part of the region that looks like the click
    # (closer to the click's value than to the region mean). It stopped the remove/add oscillation on the CT
    # phantom nodule (Dice after 20 clicks 0.0 -> 1.0; MNI unchanged). None always takes whole regions.
    rim_deviations: object = 2.0
    remove_merge_hops: int = 1  # a removal takes the clicked region and its similar direct neighbours only
    # Smart merge neither takes nor walks through a region whose intensity deviation is more than this many times
    # the clicked region's: such a region straddles an edge (partial volume between two other tissues can have any
    # mean, a small tissue's mean among them). None merges by mean alone.
    merge_spread_ratio: object = 2.0
    # A single click on a region holding two tissues (region_homogeneity.clicked_side) takes the clicked side only.
    split_clicked_region: bool = True
    # A single positive click takes, among the regions it chose and their neighbours, the voxels of the clicked
    # tissue connected to it (tissue_refinement.tissue_part): region borders inside a tissue do not decide.
    tissue_refinement: bool = True

    def parameters(self):
        from SmartRegionsLib.algorithms.supervoxels import SupervoxelParameters
        return SupervoxelParameters(region_size_mm=float(self.region_size_mm), compactness=float(self.compactness),
                                   split_separation=float(self.split_separation))
